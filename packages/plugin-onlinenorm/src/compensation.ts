import * as tf from '@tensorflow/tfjs';

/**
 * Error compensation (docs/techniques.md §6.4): keeps the estimation errors of the running
 * statistics from compounding across layers.
 */

/**
 * Activation clamping: `clip(z, -c, c)`, with a zero gradient wherever the output sits at
 * ±c (tf.clipByValue would pass the gradient at exactly ±c).
 */
export function activationClamp(z: tf.Tensor, c: number): tf.Tensor {
  const clamp = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = args as [tf.Tensor, tf.GradSaveFunc];
    save([input]);
    return {
      value: tf.clipByValue(input, -c, c),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], [saved]: tf.Tensor[]) =>
        tf.tidy(() => tf.mul(dy as tf.Tensor, tf.cast(tf.less(tf.abs(saved), c), 'float32'))),
    };
  });
  return clamp(z);
}

/**
 * Layer scaling: divide each sample by its RMS over all non-batch axes. Autodiff of
 * this form is exactly the paper's backward, `dz = (dout - <dout, out> out) / rms`
 * (the projection orthogonal to `out` when `epsLs = 0`), so no custom gradient is needed.
 */
export function layerScale(z: tf.Tensor, epsLs: number): tf.Tensor {
  return tf.tidy(() => {
    const axes = z.shape.map((_, i) => i).slice(1);
    return tf.div(z, tf.sqrt(tf.add(tf.mean(tf.square(z), axes, true), epsLs)));
  });
}
