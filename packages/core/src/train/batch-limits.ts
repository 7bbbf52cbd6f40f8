import type { Batch, BatchOptions, DataSource } from '../data/data-source';
import type { LabelSource } from '../data/labels';
import { failSource } from './fail-source';

type BatchIterator = Iterator<Batch> | AsyncIterator<Batch>;

/**
 * model.fitDataset's `batchesPerEpoch`: the source is opened once per fit and read on across
 * epochs, `batchesPerEpoch` batches an epoch, instead of restarting each epoch. An epoch
 * continued after a stop (startBatch > 0) reads what is left of its count. When the source
 * runs out before the fit's last epoch is full, `ranOut` says so: fitDataset then warns and
 * trains no further batches, and so does fit. `close()` frees what the source holds (a
 * shuffle buffer, a split batch); the per-epoch iterators leave the source open.
 */
export class CarriedEpochs implements DataSource {
  readonly size = undefined;
  readonly xShape: readonly number[] | undefined;
  private source?: BatchIterator;
  /** Batches read from the source in this fit, over all epochs. */
  batchesRead = 0;
  /** Where the source ended, when it ended before an epoch had its `batchesPerEpoch` batches: that epoch's batch count. */
  ranOutAt: number | undefined;

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
    const source = (this.source ??= this.data.batches({ ...options, startBatch: 0 }));
    for (let i = options.startBatch ?? 0; i < this.batchesPerEpoch; i++) {
      const r = await source.next();
      if (r.done) {
        this.ranOutAt = i;
        return;
      }
      this.batchesRead++;
      try {
        yield r.value;
      } catch (err) {
        throw await failSource(source, err); // the source frees what it holds and may say more
      }
    }
  }

  /** The source's label check (fit's check before training), where it has one. */
  checkLabels(classes: number, predRank: number): void {
    (this.data as Partial<LabelSource>).checkLabels?.(classes, predRank);
  }

  async close(): Promise<void> {
    const source = this.source;
    this.source = undefined;
    await source?.return?.();
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

/** fitDataset's warning when the data runs out under batchesPerEpoch, with what fit does then. */
export function ranOutWarning(data: CarriedEpochs, epoch: number, epochs: number): string {
  const n = data.batchesPerEpoch;
  const at = data.ranOutAt ?? 0;
  const cut = at > 0 ? `after ${at} of epoch ${epoch}'s ${n} batches; that epoch's logs cover those ${at} (not validated), and` : `before epoch ${epoch}'s first batch;`;
  return (
    `fit: batchesPerEpoch is ${n}, but the data ran out ${cut} training stops there (model.fitDataset stops training too, and logs the epochs left as empty). ` +
    `Give fit data of at least epochs * batchesPerEpoch = ${epochs * n} batches, e.g. datasetData(ds.repeat(), { batched: true }).`
  );
}
