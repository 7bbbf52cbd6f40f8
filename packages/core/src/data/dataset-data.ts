import * as tf from '@tensorflow/tfjs';
import { formatBytes } from '../backend/memory-guard';
import { ErrorCodes, TapfitError } from '../errors';
import type { Batch, BatchOptions, DataSource } from './data-source';
import { ACCEPTED_PARTS, batchesOf, describe, partBytes, partProblem, tensorsIn, type DatasetElement, type Elements } from './plain-batch';
import { ShuffleBuffer } from './shuffle-buffer';

export type { DatasetElement, ElementPart } from './plain-batch';

/** The default shuffle buffer: this many elements, ... */
export const DEFAULT_SHUFFLE_ELEMENTS = 1024;
/** ... or fewer, so that they take at most this many bytes (image-sized elements would fill the wasm heap). */
export const DEFAULT_SHUFFLE_BYTES = 64 * 2 ** 20;

/**
 * Adapts a `tf.data.Dataset` of `{xs, ys}` elements, each a tensor or a plain number / array /
 * typed array (batched on the host: see plain-batch.ts). The trainer batches it, so the dataset
 * is unbatched; one made for model.fitDataset (batched already) needs `batched: true`: fit
 * then takes its batches as they come, or, given batchSize or shuffle, splits them into
 * samples (tf.data has no unbatch) and re-batches them. Shuffling draws from a seeded buffer
 * of `shuffleBuffer` elements (shuffle-buffer.ts); by default 1024, or as many as fit in
 * 64 MiB when the elements are larger than 64 KiB.
 */
export class DatasetData implements DataSource {
  constructor(
    private readonly ds: tf.data.Dataset<DatasetElement>,
    private readonly shuffleBuffer?: number,
    readonly size?: number,
    /** The elements are batches of `{ xs, ys }` tensors (a model.fitDataset dataset). */
    private readonly batched = false,
  ) {}

  /** Bytes of the first element as tensors (set by the check before the first batch). */
  private elementBytes: number | undefined;
  /** Samples in the first batch of a batched dataset (set by the same check). */
  private firstBatchSize: number | undefined;
  /** A batched dataset's first batch's shapes without the batch dimension: every batch is checked against them. */
  private sampleShapes: { xs: number[]; ys: number[] } | undefined;

  /**
   * The iterator the first-element check opened, with that element: the next `batches()`
   * trains on both, so checking neither opens the dataset again nor reads an element twice.
   * (A tf.data iterator cannot be closed: one opened only to look would keep what a
   * ds.shuffle(n) upstream had buffered, and the next open would draw another order.)
   */
  private opened: { it: Elements; first: IteratorResult<DatasetElement> } | undefined;

  /** With `batched: true`, the size of the dataset's first batch: fit's default batchSize (model.fitDataset's batching). */
  async ownBatchSize(): Promise<number | undefined> {
    if (!this.batched) return undefined;
    await this.checkFirst();
    return this.firstBatchSize;
  }

  /**
   * @internal fit's, not part of the published declarations (core's tsconfig strips @internal).
   * model.fitDataset opens the dataset once before its epochs and, without batchesPerEpoch,
   * again at each epoch (tfjs-layers 4.22), so its first epoch reads the second open. A
   * ds.shuffle draws a new order at each open: fit does the same unread open (a batched
   * dataset read as it comes, once per fit) to train on model.fitDataset's orders.
   */
  async openUnreadAsFitDataset(): Promise<void> {
    if (this.batched && !this.opened) await this.ds.iterator();
  }

  /** @internal fit's: frees the element the check read, when no `batches()` took it (a fit that failed before its first epoch). */
  release(): void {
    const held = this.opened;
    this.opened = undefined;
    if (held && !held.first.done) tf.dispose(tensorsIn(held.first.value));
  }

  async *batches({ batchSize, shuffle, seed, epoch, startBatch = 0, ownBatches }: BatchOptions): AsyncIterator<Batch> {
    const elements = await this.elements();
    if (this.batched && ownBatches && !shuffle) {
      yield* this.asTheyCome(elements, startBatch);
      return;
    }
    const upstream = this.batched ? samplesOf(elements) : elements;
    if (!shuffle) {
      yield* batchesOf(upstream, batchSize, startBatch);
      return;
    }
    const buffer = new ShuffleBuffer<DatasetElement>(this.shuffleCapacity(), `tapfit:${seed}:${epoch}`, (items) => tf.dispose(tensorsIn(items)));
    try {
      yield* batchesOf(buffer.shuffle(upstream), batchSize, startBatch);
    } catch (err) {
      throw this.explain(err, buffer.heldAtEnd);
    }
  }

  /** The dataset's elements from one open: the checked iterator if one is held, else a new one (checked first if never checked). */
  private async elements(): Promise<Elements> {
    await this.checkFirst();
    const held = this.opened;
    this.opened = undefined;
    return held ? withFirst(held.first, held.it) : ((await this.ds.iterator()) as Elements);
  }

  /** Once per source: opens the dataset, checks its first element and holds both for the next `batches()`. */
  private async checkFirst(): Promise<void> {
    if (this.elementBytes !== undefined || this.opened) return;
    const it = (await this.ds.iterator()) as Elements;
    const first = await it.next();
    try {
      this.elementBytes = this.checkElement(first.done ? undefined : first.value);
    } catch (err) {
      if (!first.done) tf.dispose(tensorsIn(first.value));
      throw err;
    }
    this.opened = { it, first };
  }

  /**
   * model.fitDataset's reading of a batched dataset: each batch whole, whatever its size, so a
   * repeated dataset's short batch stays one batch instead of being merged with the next
   * pass's first samples. Nothing is held between batches, so there is nothing to free.
   */
  private async *asTheyCome(it: Elements, startBatch: number): AsyncGenerator<Batch> {
    for (let i = 0; ; i++) {
      const r = await it.next();
      if (r.done) return;
      const batch = this.checkedBatch(r.value, i);
      if (i < startBatch) tf.dispose([batch.x, batch.y]); // batches the stopped epoch trained already
      else yield batch;
    }
  }

  /** Batch `i` of a batched dataset, if it is { xs, ys } tensors like the first (checked before training); else it is freed and named. */
  private checkedBatch(v: unknown, i: number): Batch {
    const { xs, ys } = (typeof v === 'object' && v !== null ? v : {}) as { xs?: unknown; ys?: unknown };
    const want = this.sampleShapes!;
    const tensors = xs instanceof tf.Tensor && ys instanceof tf.Tensor && xs.rank > 0 && ys.rank > 0;
    if (tensors && xs.shape[0] === ys.shape[0] && sameShape(xs.shape.slice(1), want.xs) && sameShape(ys.shape.slice(1), want.ys)) return { x: xs, y: ys };
    tf.dispose(tensorsIn(v));
    throw new TapfitError(
      tensors ? ErrorCodes.SHAPE : ErrorCodes.CONFIG,
      `datasetData(ds, { batched: true }): the dataset's batch ${i} is { xs: ${describeBatchPart(xs)}, ys: ${describeBatchPart(ys)} }, but its first batch was { xs: [${['n', ...want.xs]}], ys: [${['n', ...want.ys]}] }. ` +
        'Every batch must be { xs, ys } tensors with the same number of samples in each and the first batch\'s sample shapes: map the dataset before its .batch() call so that all elements match.',
    );
  }

  /** Elements the shuffle buffer holds: `shuffleBuffer`, or the default's count capped in bytes. */
  private shuffleCapacity(): number {
    if (this.shuffleBuffer !== undefined) return this.shuffleBuffer;
    const bytes = this.elementBytes ?? 0;
    return bytes > 0 ? Math.max(1, Math.min(DEFAULT_SHUFFLE_ELEMENTS, Math.floor(DEFAULT_SHUFFLE_BYTES / bytes))) : DEFAULT_SHUFFLE_ELEMENTS;
  }

  /** A refused allocation during a shuffled epoch also names the buffer, which may hold most of the memory. */
  private explain(err: unknown, held: number): unknown {
    if (!(err instanceof TapfitError) || err.code !== ErrorCodes.MEMORY || held === 0) return err;
    return new TapfitError(
      ErrorCodes.MEMORY,
      `${err.message} (datasetData's shuffle buffer held ${held} elements then, about ${formatBytes(held * (this.elementBytes ?? 0))}: ` +
        'pass datasetData(ds, { shuffleBuffer }) a smaller count, or fit with shuffle: false.)',
      { cause: err },
    );
  }

  /**
   * The first element is { xs, ys } of accepted parts, checked once before any shuffle buffer
   * fills. Returns its size in bytes as tensors. The caller frees it if this throws.
   */
  private checkElement(first: unknown): number {
    if (first === undefined) return 0;
    const v = first as { xs?: unknown; ys?: unknown };
    const isObject = typeof v === 'object' && v !== null && !(v instanceof tf.Tensor) && !Array.isArray(v) && !ArrayBuffer.isView(v);
    if (!isObject || !('xs' in v || 'ys' in v)) {
      const got = isObject ? `{ ${Object.keys(v).join(', ')} }` : describe(v);
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `datasetData: the dataset's elements must be { xs, ys } (inputs, targets; as model.fitDataset takes them), got ${got}. ` +
          'Map them, e.g. ds.map(([x, y]) => ({ xs: x, ys: y })).',
      );
    }
    const problems = { xs: partProblem(v.xs), ys: partProblem(v.ys) };
    if (problems.xs || problems.ys) {
      const got = (['xs', 'ys'] as const).map((k) => `${k}: ${problems[k] ?? describe(v[k])}`).join(', ');
      // tf.data.csv gives { xs: { column: value, ... }, ys: { label: value } }.
      const columns = [v.xs, v.ys].some((p) => /^an object/.test(partProblem(p) ?? ''));
      const fix = columns
        ? "Map the columns to arrays, e.g. ds.map(({ xs, ys }) => ({ xs: Object.values(xs), ys: Object.values(ys)[0] })) for tf.data.csv's elements."
        : 'Map them to one of these, e.g. ds.map(e => ({ xs: tf.tensor(e.xs), ys: Number(e.ys) })).';
      throw new TapfitError(ErrorCodes.CONFIG, `datasetData: the dataset's elements' xs and ys must each be ${ACCEPTED_PARTS}; got { ${got} }. ${fix}`);
    }
    if (this.batched) {
      const [xs, ys] = [v.xs, v.ys];
      if (!(xs instanceof tf.Tensor && ys instanceof tf.Tensor && xs.rank > 0 && ys.rank > 0 && xs.shape[0] === ys.shape[0])) {
        throw new TapfitError(
          ErrorCodes.CONFIG,
          `datasetData(ds, { batched: true }): the dataset's elements must be batches { xs, ys } of tensors with the same first (batch) dimension, as ds.batch(n) makes them; got { xs: ${describeBatchPart(xs)}, ys: ${describeBatchPart(ys)} }. For an unbatched dataset leave 'batched' out, or batch it (ds.batch(n)): trainer.fitDataset, like model.fitDataset, takes batches.`,
        );
      }
      this.firstBatchSize = xs.shape[0];
      this.sampleShapes = { xs: xs.shape.slice(1), ys: ys.shape.slice(1) };
      // Bytes of one sample: the shuffle buffer holds samples.
      return (partBytes(xs) + partBytes(ys)) / Math.max(1, xs.shape[0]);
    }
    return partBytes(v.xs) + partBytes(v.ys);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function describeBatchPart(p: unknown): string {
  return p instanceof tf.Tensor ? `a tensor of shape [${p.shape}]` : describe(p);
}

/** `first` (already read from `it`), then the rest of `it`. */
async function* withFirst(first: IteratorResult<DatasetElement>, it: Elements): AsyncGenerator<DatasetElement> {
  if (first.done) return;
  yield first.value;
  for (let r = await it.next(); !r.done; r = await it.next()) yield r.value;
}

/**
 * The samples of a batched dataset, one element each: each batch is split (tf.unstack) and
 * freed, as tf.data's own ops free the elements they consume. A plain async generator, not a
 * tf.data dataset: tf.data's iterators have no `return()`, so a fit that stopped or failed
 * mid-batch could not reach the split batch's unread samples. Closing this frees them.
 */
async function* samplesOf(it: Elements): AsyncGenerator<DatasetElement> {
  let x: tf.Tensor[] = [];
  let y: tf.Tensor[] = [];
  let unread = 0; // x[unread..] and y[unread..] are still this generator's
  try {
    for (let r = await it.next(); !r.done; r = await it.next()) {
      const { xs, ys } = r.value as { xs: tf.Tensor; ys: tf.Tensor };
      [x, y, unread] = [[], [], 0];
      try {
        x = tf.unstack(xs);
        y = tf.unstack(ys);
      } finally {
        tf.dispose([xs, ys]);
      }
      while (unread < x.length) {
        const i = unread++;
        yield { xs: x[i], ys: y[i] }; // the consumer's from here on
      }
    }
  } finally {
    tf.dispose([...x.slice(unread), ...y.slice(unread)]);
  }
}

export interface DatasetDataOptions {
  /** Elements in the shuffle buffer (default 1024, fewer for elements over 64 KiB: at most 64 MiB of them). */
  shuffleBuffer?: number | undefined;
  /** Samples per epoch, when known (the progress and `History.params.samples`). */
  size?: number | undefined;
  /**
   * The dataset yields batches (`ds.batch(n)`, as model.fitDataset takes it). fit trains on
   * them as model.fitDataset does: each batch as it comes, in the dataset's order (no
   * shuffle; the first batch's size is fit's batchSize), unless it is given `batchSize` or
   * `shuffle` (then the batches are split into samples and re-batched, shuffled). Default false.
   */
  batched?: boolean | undefined;
}

/**
 * `ds`: `{ xs, ys }` elements, each a tensor, a number, an array of numbers or a typed array;
 * unbatched, or batches of tensors with `batched: true`. Any tf.data dataset type-checks (as
 * model.fitDataset's does, e.g. tf.data.zip's `Dataset<TensorContainer>`); its first element is
 * checked before training, naming what it found and the `map` that fixes it.
 */
export function datasetData(ds: tf.data.Dataset<tf.TensorContainer>, options: DatasetDataOptions = {}): DatasetData {
  const n = options.shuffleBuffer;
  if (n !== undefined && !(Number.isInteger(n) && n >= 1)) {
    throw new TapfitError(ErrorCodes.CONFIG, `datasetData: shuffleBuffer must be a whole number of elements, at least 1; got ${n}. (fit's shuffle: false turns shuffling off.)`);
  }
  return new DatasetData(ds as tf.data.Dataset<DatasetElement>, options.shuffleBuffer, options.size, options.batched ?? false);
}
