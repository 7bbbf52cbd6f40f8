import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { Batch, BatchOptions, DataSource } from './data-source';
import { ACCEPTED_PARTS, describe, partProblem, plainBatches, tensorsIn, type DatasetElement } from './plain-batch';

export type { DatasetElement, ElementPart } from './plain-batch';

/**
 * Adapts an UNBATCHED (the trainer batches it; a dataset made for model.fitDataset is
 * batched already: `.unbatch()` it, which the trainer's shape check names) `tf.data.Dataset` of `{xs, ys}` elements,
 * each a tensor or a plain number / array / typed array (batched on the host: see plain-batch.ts).
 * Shuffling uses the dataset's seeded shuffle with a buffer of `shuffleBuffer` (default 1024) elements.
 */
export class DatasetData implements DataSource {
  constructor(
    private readonly ds: tf.data.Dataset<DatasetElement>,
    private readonly shuffleBuffer = 1024,
    readonly size?: number,
  ) {}

  /** Whether the first element holds a plain xs or ys (set by the check before the first batch). */
  private plain: boolean | undefined;

  async *batches({ batchSize, shuffle, seed, epoch, startBatch = 0 }: BatchOptions): AsyncIterator<Batch> {
    if (this.plain === undefined) this.plain = await this.checkElements();
    let ds = this.ds;
    if (shuffle) ds = ds.shuffle(this.shuffleBuffer, `tapfit:${seed}:${epoch}`, false);
    if (this.plain) {
      yield* plainBatches(ds, batchSize, startBatch);
      return;
    }
    const it = await ds.batch(batchSize).skip(startBatch).iterator();
    for (let r = await it.next(); !r.done; r = await it.next()) {
      const v = r.value as unknown as { xs: tf.Tensor; ys: tf.Tensor };
      yield { x: v.xs, y: v.ys };
    }
  }

  /**
   * The first element is { xs, ys } of accepted parts, checked once before any shuffle buffer
   * fills (an abandoned tf.data iterator never frees the elements it holds). Says whether it
   * holds plain values.
   */
  private async checkElements(): Promise<boolean> {
    const [first] = (await this.ds.take(1).toArray()) as unknown[];
    try {
      if (first === undefined) return false;
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
      return !(v.xs instanceof tf.Tensor && v.ys instanceof tf.Tensor);
    } finally {
      tf.dispose(tensorsIn(first));
    }
  }
}

/** `ds`: unbatched `{ xs, ys }` elements, each a tensor, a number, an array of numbers or a typed array. */
export function datasetData<T extends DatasetElement>(ds: tf.data.Dataset<T>, options: { shuffleBuffer?: number; size?: number } = {}): DatasetData {
  return new DatasetData(ds as unknown as tf.data.Dataset<DatasetElement>, options.shuffleBuffer, options.size);
}
