import * as tf from '@tensorflow/tfjs';
import { scaledSum } from '../transforms/fused-updates';

/**
 * Means over samples of per-batch values (loss, metrics), as model.fit averages them:
 * each batch's values weighted by its size. The sums stay on the device; `means()` reads
 * them back once.
 */
export class BatchMeans {
  private sums?: tf.Tensor1D;
  private samples = 0;

  /** Continues sums read back earlier (`read()`), e.g. the part of an epoch before a stop. */
  static continuing(sums: readonly (number | null)[], samples: number): BatchMeans {
    const m = new BatchMeans();
    m.sums = tf.tensor1d(sums.map((v) => v ?? NaN), 'float32');
    m.samples = samples;
    return m;
  }

  /**
   * Adds one batch's values (the caller keeps `values`). This runs every step: after the first
   * batch it is one fused kernel where the backend has it (wasm), the same IEEE operations as
   * a multiply then an add, without a scalar tensor made for the batch size each time.
   */
  add(values: tf.Tensor1D, batchSize: number): void {
    const next = tf.tidy(() => (this.sums ? scaledSum(this.sums, 1, values, batchSize) : tf.mul(values, batchSize)) as tf.Tensor1D);
    this.sums?.dispose();
    this.sums = next;
    this.samples += batchSize;
  }

  get count(): number {
    return this.samples;
  }

  /**
   * The means as numbers (one read-back); undefined if nothing was added. Rounded to float32,
   * as model.fit's logs are (it divides on the device): the float32 quotient of the sums.
   */
  async means(): Promise<number[] | undefined> {
    if (!this.sums) return undefined;
    return Array.from(await this.sums.data(), (s) => Math.fround(s / this.samples));
  }

  /** The sums themselves (one read-back), for `continuing`; undefined if nothing was added. */
  async read(): Promise<{ sums: number[]; samples: number } | undefined> {
    if (!this.sums) return undefined;
    return { sums: Array.from(await this.sums.data()), samples: this.samples };
  }

  /** The means as scalars on the device (no read-back; the caller disposes them). */
  meanScalars(): tf.Scalar[] | undefined {
    if (!this.sums) return undefined;
    const sums = this.sums;
    return tf.tidy(() => tf.unstack(tf.div(sums, this.samples)) as tf.Scalar[]);
  }

  dispose(): void {
    this.sums?.dispose();
    this.sums = undefined;
  }
}
