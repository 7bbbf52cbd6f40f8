import * as tf from '@tensorflow/tfjs';
import type { Batch, BatchOptions, DataSource } from './data-source';

/**
 * Adapts an UNBATCHED `tf.data.Dataset` of `{xs, ys}` elements. Shuffling uses the
 * dataset's seeded shuffle with a buffer of `shuffleBuffer` (default 1024) elements.
 */
export class DatasetData implements DataSource {
  constructor(
    private readonly ds: tf.data.Dataset<{ xs: tf.Tensor; ys: tf.Tensor }>,
    private readonly shuffleBuffer = 1024,
    readonly size?: number,
  ) {}

  async *batches({ batchSize, shuffle, seed, epoch, startBatch = 0 }: BatchOptions): AsyncIterator<Batch> {
    let ds = this.ds;
    if (shuffle) ds = ds.shuffle(this.shuffleBuffer, `tapfit:${seed}:${epoch}`, false);
    const it = await ds.batch(batchSize).skip(startBatch).iterator();
    for (let r = await it.next(); !r.done; r = await it.next()) {
      const v = r.value as unknown as { xs: tf.Tensor; ys: tf.Tensor };
      yield { x: v.xs, y: v.ys };
    }
  }
}

export function datasetData(ds: tf.data.Dataset<{ xs: tf.Tensor; ys: tf.Tensor }>, options: { shuffleBuffer?: number; size?: number } = {}): DatasetData {
  return new DatasetData(ds, options.shuffleBuffer, options.size);
}
