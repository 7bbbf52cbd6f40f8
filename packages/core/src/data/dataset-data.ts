import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { Batch, BatchOptions, DataSource } from './data-source';

/**
 * Adapts an UNBATCHED (the trainer batches it; a dataset made for model.fitDataset is
 * batched already: `.unbatch()` it, which the trainer's shape check names) `tf.data.Dataset` of `{xs, ys}` elements. Shuffling uses the
 * dataset's seeded shuffle with a buffer of `shuffleBuffer` (default 1024) elements.
 */
export class DatasetData implements DataSource {
  constructor(
    private readonly ds: tf.data.Dataset<{ xs: tf.Tensor; ys: tf.Tensor }>,
    private readonly shuffleBuffer = 1024,
    readonly size?: number,
  ) {}

  private checked = false;

  async *batches({ batchSize, shuffle, seed, epoch, startBatch = 0 }: BatchOptions): AsyncIterator<Batch> {
    if (!this.checked) await this.checkElements();
    let ds = this.ds;
    if (shuffle) ds = ds.shuffle(this.shuffleBuffer, `tapfit:${seed}:${epoch}`, false);
    const it = await ds.batch(batchSize).skip(startBatch).iterator();
    for (let r = await it.next(); !r.done; r = await it.next()) {
      const v = r.value as unknown as { xs: tf.Tensor; ys: tf.Tensor };
      yield { x: v.xs, y: v.ys };
    }
  }

  /**
   * The first element is { xs, ys }, checked once before any shuffle buffer fills (an
   * abandoned tf.data iterator never frees the elements it holds).
   */
  private async checkElements(): Promise<void> {
    const [first] = (await this.ds.take(1).toArray()) as unknown[];
    const v = first as { xs?: unknown; ys?: unknown } | undefined;
    const ok = v === undefined || (v.xs instanceof tf.Tensor && v.ys instanceof tf.Tensor);
    const got = v instanceof tf.Tensor ? `a tensor of shape [${v.shape}]` : Array.isArray(v) ? `an array of ${v.length}` : `{ ${Object.keys(v ?? {}).join(', ')} }`;
    tf.dispose(tensorsIn(v));
    if (!ok) {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `datasetData: the dataset's elements must be { xs, ys } (inputs, targets; as model.fitDataset takes them), got ${got}. ` +
          'Map them, e.g. ds.map(([x, y]) => ({ xs: x, ys: y })).',
      );
    }
    this.checked = true;
  }
}

export function datasetData(ds: tf.data.Dataset<{ xs: tf.Tensor; ys: tf.Tensor }>, options: { shuffleBuffer?: number; size?: number } = {}): DatasetData {
  return new DatasetData(ds, options.shuffleBuffer, options.size);
}

/** Every tensor in a dataset element (for disposal), however it is nested. */
function tensorsIn(v: unknown): tf.Tensor[] {
  if (v instanceof tf.Tensor) return [v];
  if (v && typeof v === 'object') return Object.values(v).flatMap(tensorsIn);
  return [];
}
