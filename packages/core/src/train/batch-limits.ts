import * as tf from '@tensorflow/tfjs';
import type { Batch, BatchOptions, DataSource } from '../data/data-source';
import type { LabelSource } from '../data/labels';
import { DatasetData } from '../data/dataset-data';
import { TensorData } from '../data/tensor-data';
import { failSource } from './fail-source';

type BatchIterator = Iterator<Batch> | AsyncIterator<Batch>;

/**
 * model.fitDataset's `batchesPerEpoch`: the source is opened once per fit and read on across
 * epochs, `batchesPerEpoch` batches an epoch, instead of restarting each epoch. An epoch
 * continued after a stop (startBatch > 0) reads what is left of its count. When the source
 * runs out before the fit's last epoch is full, `ranOut` says so: fitDataset then warns and
 * trains no further batches, and so does fit. `close()` frees what the source holds (a
 * shuffle buffer, a split batch, a batch read ahead); the per-epoch iterators leave the
 * source open.
 */
export class CarriedEpochs implements DataSource {
  readonly size = undefined;
  readonly xShape: readonly number[] | undefined;
  private source?: BatchIterator;
  /** Batches read from the source in this fit, over all epochs. */
  batchesRead = 0;
  /**
   * Where the data is opened when the fit continues an epoch stopped in an earlier fit
   * (set by the trainer from the position): the batches that fit had trained on, which the
   * source skips, so that the continued epoch gets the batches an uninterrupted fit would have.
   */
  resumeAt: number | undefined;
  /** The batches skipped at the open (resumeAt, when the fit continues an epoch). */
  private skipped = 0;
  /** Where the source ended, when it ended before an epoch had its `batchesPerEpoch` batches: that epoch's batch count. */
  ranOutAt: number | undefined;
  /** The next epoch's first batch, read ahead by `endedBeforeNextEpoch`. */
  private held: Batch | undefined;

  get ranOut(): boolean {
    return this.ranOutAt !== undefined;
  }

  constructor(
    private readonly data: DataSource,
    readonly batchesPerEpoch: number,
  ) {
    this.xShape = data.xShape;
  }

  async *batches(options: BatchOptions): AsyncGenerator<Batch> {
    // The first epoch's options open the source (batch size, shuffle seed); later epochs read on.
    if (!this.source) this.skipped = (options.startBatch ?? 0) > 0 ? (this.resumeAt ?? 0) : 0;
    const source = (this.source ??= this.data.batches({ ...options, startBatch: this.skipped }));
    for (let i = options.startBatch ?? 0; i < this.batchesPerEpoch; i++) {
      let batch = this.held;
      this.held = undefined;
      if (!batch) {
        const r = await source.next();
        if (r.done) {
          this.ranOutAt = i;
          return;
        }
        batch = r.value;
      }
      this.batchesRead++;
      try {
        yield batch;
      } catch (err) {
        throw await failSource(source, err); // the source frees what it holds and may say more
      }
    }
  }

  /** Batches of the data handed to the epochs since it was opened, the skipped ones included (a stop's read-ahead too: the trainer counts its steps instead). */
  get position(): number {
    return this.skipped + this.batchesRead;
  }

  /**
   * Whether the source, read on from earlier epochs, has no batch left for the next epoch.
   * Asked before an epoch opens, so that an epoch with nothing to train is not begun (its
   * epochStart and onEpochBegin would have no end); the batch read to tell is held for it.
   */
  async endedBeforeNextEpoch(): Promise<boolean> {
    if (!this.source || this.held) return false; // nothing read yet: an empty source is fit's "no batches" error
    const r = await this.source.next();
    if (!r.done) {
      this.held = r.value;
      return false;
    }
    this.ranOutAt = 0;
    return true;
  }

  /** The source's label check (fit's check before training), where it has one. */
  checkLabels(classes: number, predRank: number): void {
    (this.data as Partial<LabelSource>).checkLabels?.(classes, predRank);
  }

  async close(): Promise<void> {
    const [source, held] = [this.source, this.held];
    [this.source, this.held] = [undefined, undefined];
    if (held) tf.dispose([held.x, held.y]);
    await source?.return?.();
  }

  /** What to do about data that ran out, for this kind of source. */
  remedy(): string {
    if (this.data instanceof DatasetData) {
      return 'Repeat the dataset so that it does not end: fit(datasetData(ds.repeat(), { batched: true }), ...) or fitDataset(ds.repeat(), ...).';
    }
    if (this.data instanceof TensorData) {
      return (
        'tensorData and arrayData hold one pass of data and are not repeated: leave batchesPerEpoch out (each epoch is then one pass over the data, as in model.fit), ' +
        'or lower epochs or batchesPerEpoch so that one pass covers them.'
      );
    }
    return "Make the source's batches() yield that many: fit calls it once and reads on across the epochs.";
  }
}

/**
 * model.fitDataset's `validationBatches`: the first `count` batches of the validation source,
 * read afresh at each epoch's end (fitDataset's evaluateDataset opens the dataset each time).
 */
export function firstBatches(data: DataSource, count: number): DataSource {
  return {
    size: undefined,
    ...(data.xShape ? { xShape: data.xShape } : {}),
    async *batches(options: BatchOptions): AsyncGenerator<Batch> {
      const it = data.batches(options);
      try {
        for (let i = 0; i < count; i++) {
          const r = await it.next();
          if (r.done) return;
          yield r.value;
        }
      } finally {
        await it.return?.(); // stopped at the count: the source frees what it read ahead
      }
    },
  };
}

/** Where a fit under batchesPerEpoch starts and ends: what it needs of the data. */
export interface CarriedSpan {
  /** The epoch the fit starts in, and the batches of it trained before (a fit continuing a stopped epoch). */
  from: { epoch: number; batch: number };
  /** The epoch it ends before (the final epoch). */
  to: number;
}

/**
 * fitDataset's warning when the data runs out under batchesPerEpoch, with what fit does then,
 * the batches this fit needed (its own epochs, not the final epoch's count from 0 as
 * fitDataset says) and the remedy that fits the source.
 */
export function ranOutWarning(data: CarriedEpochs, epoch: number, span: CarriedSpan): string {
  const n = data.batchesPerEpoch;
  const at = data.ranOutAt ?? 0;
  const cut = at > 0 ? `after ${at} of epoch ${epoch}'s ${n} batches; that epoch's logs cover those ${at} (not validated), and` : `before epoch ${epoch}'s first batch;`;
  const { from, to } = span;
  const epochs = to - from.epoch;
  const needed = epochs * n - from.batch;
  const which = epochs === 1 ? `epoch ${from.epoch}` : `epochs ${from.epoch} to ${to - 1}`;
  const less = from.batch > 0 ? `, less the ${from.batch} epoch ${from.epoch} trained before it was stopped` : '';
  return (
    `fit: batchesPerEpoch is ${n}, but the data ran out ${cut} training stops there (model.fitDataset stops training too, and logs the epochs left as empty). ` +
    `This fit needs ${needed} batches (${which}, ${n} each${less}) and the data gave ${data.batchesRead}. ${data.remedy()}`
  );
}
