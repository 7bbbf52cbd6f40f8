import type * as tf from '@tensorflow/tfjs';

/** One batch. The consumer disposes both tensors. */
export interface Batch {
  x: tf.Tensor;
  y: tf.Tensor;
}

export interface BatchOptions {
  batchSize: number;
  shuffle: boolean;
  /** Shuffling seed; with `epoch` it fixes the order, so a resumed run sees the same batches. */
  seed: number;
  epoch: number;
  /** Skip this many batches of the epoch (resume mid-epoch). */
  startBatch?: number | undefined;
  /**
   * For a source with `ownBatchSize` (a batched dataset): yield its batches as they come,
   * whatever their sizes, as model.fitDataset reads them (`batchSize` is then the first
   * batch's size, for the counts). Set by fit when it was given neither batchSize nor shuffle.
   */
  ownBatches?: boolean | undefined;
}

/** Where batches come from: in-memory tensors/arrays or a tf.data.Dataset. */
export interface DataSource {
  /** Samples per epoch, when known. */
  readonly size?: number | undefined;
  /** Sample shape of x without the batch dimension, when known (checked against the model). */
  readonly xShape?: readonly number[];
  batches(options: BatchOptions): Iterator<Batch> | AsyncIterator<Batch>;
  /**
   * The batch size the data comes in, for a source of batches made for model.fitDataset
   * (`datasetData(ds, { batched: true })`): fit trains on them as they come (that batch
   * size, not shuffled) unless it is given `batchSize` or `shuffle`. Undefined otherwise.
   */
  ownBatchSize?(): Promise<number | undefined>;
}

export function batchesPerEpoch(data: DataSource, batchSize: number): number | undefined {
  return data.size === undefined ? undefined : Math.ceil(data.size / batchSize);
}

