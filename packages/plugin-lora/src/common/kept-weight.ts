import * as tf from '@tensorflow/tfjs';

/**
 * The base weight a merge overwrote, kept so that unmerge puts it back bit for bit.
 * Subtracting s·A·B again would round W to the float32 grid of W + s·A·B, and with the
 * adapter trained between round trips those roundings add up instead of cancelling
 * (measured before this: 5.3e-6 after 1,000 merge/unmerge cycles with a training step
 * between each, growing linearly). Costs one weight-sized tensor per target while merged.
 */
export class KeptWeight {
  private constructor(
    private readonly before: tf.Tensor,
    /** The data the merge wrote: a weight holding other data was written since. */
    private readonly mergedData: object,
  ) {}

  /** Writes `merged` into `variable` with `write`, keeping the value it replaces. */
  static write(variable: tf.Variable, merged: tf.Tensor, write: (t: tf.Tensor) => void): KeptWeight {
    const before = tf.clone(variable); // shares the data: the write drops the variable's reference, not the values
    try {
      write(merged);
    } catch (err) {
      before.dispose();
      throw err;
    }
    return new KeptWeight(before, variable.dataId);
  }

  /**
   * The pre-merge value (a new tensor) while `variable` still holds what the merge wrote;
   * undefined once it was written since (setWeights, a load): unmerge then subtracts s·A·B
   * from what it holds, as for a merged model read from a file.
   */
  restored(variable: tf.Variable): tf.Tensor | undefined {
    return variable.dataId === this.mergedData ? tf.clone(this.before) : undefined;
  }

  dispose(): void {
    this.before.dispose();
  }
}
