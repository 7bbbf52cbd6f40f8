import * as tf from '@tensorflow/tfjs';

/**
 * One target per sample ([N]) for a model with one output unit ([N, 1]) becomes [N, 1]
 * float32, as model.fit makes every rank-1 array two-dimensional (tfjs-layers'
 * standardizeInputData): a binary classifier or a 1-output regression trains on a plain
 * list of 0/1 labels or values. Anything else is returned as it is. A new tensor is the
 * caller's to dispose.
 */
export function asModelTargets(y: tf.Tensor, outputShape: readonly (number | null)[] | undefined): tf.Tensor {
  if (y.rank !== 1 || outputShape?.length !== 1 || outputShape[0] !== 1) return y;
  return tf.tidy(() => tf.reshape(y.dtype === 'float32' ? y : tf.cast(y, 'float32'), [-1, 1]));
}

/**
 * One value per sample ([N]) for a model that takes one value ([N, 1]) becomes [N, 1], as
 * model.fit / evaluate / predict make a rank-1 x two-dimensional (the same rule as the
 * targets'): a one-feature regression trains on a plain list of values. Anything else is
 * returned as it is. A new tensor is the caller's to dispose.
 */
export function asModelInputs(x: tf.Tensor, inputShape: readonly (number | null)[] | undefined): tf.Tensor {
  return x.rank === 1 && takesOneValue(inputShape) ? tf.reshape(x, [-1, 1]) : x;
}

/** A sample shape of one value: [1]. */
export function takesOneValue(sampleShape: readonly (number | null)[] | undefined): boolean {
  return sampleShape?.length === 1 && sampleShape[0] === 1;
}
