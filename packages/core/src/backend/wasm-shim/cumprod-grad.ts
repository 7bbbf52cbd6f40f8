import * as tf from '@tensorflow/tfjs';

/*
 * The gradient of Cumprod, which tfjs 4.22 does not register, computed without dividing
 * by x (TensorFlow's form, a reversed cumsum of dy y divided by x, is NaN or infinite
 * wherever x has a zero).
 *
 * Along the axis, in the scan's direction (flipped first for `reverse`), with
 * E_i = x_0 ... x_{i-1} (the exclusive cumprod):
 *
 *   inclusive, y_j = x_0 ... x_j:      dx_i = E_i S_i,  S_i = dy_i     + x_{i+1} S_{i+1},  S_{n-1} = dy_{n-1}
 *   exclusive, y_j = x_0 ... x_{j-1}:  dx_i = E_i T_i,  T_i = dy_{i+1} + x_{i+1} T_{i+1},  T_{n-1} = 0
 *
 * Both are the linear recurrence r_i = b_i + a_i r_{i+1} (a_i = x_{i+1}, zero past the
 * end), solved by a doubling scan: after the round with shift d each position holds
 * (a, b) with r_i = b_i + a_i r_{i+2d}, combined as (a_i a_{i+d}, b_i + a_i b_{i+d}), so
 * ceil(log2 n) rounds of element-wise ops, differentiable again.
 */

interface CumprodAttrs {
  axis: number;
  exclusive: boolean;
  reverse: boolean;
}

export const cumprodGradConfig: tf.GradConfig = {
  kernelName: 'Cumprod',
  inputsToSave: ['x'],
  gradFunc: (dy, [x], attrs) => {
    const { axis, exclusive, reverse } = attrs as unknown as CumprodAttrs;
    return { x: () => tf.tidy(() => cumprodGrad(dy as tf.Tensor, x, axis < 0 ? axis + x.rank : axis, exclusive, reverse)) };
  },
};

function cumprodGrad(dy: tf.Tensor, x: tf.Tensor, axis: number, exclusive: boolean, reverse: boolean): tf.Tensor {
  const n = x.shape[axis];
  if (n === 0 || x.size === 0) return tf.zerosLike(x);
  const flip = (t: tf.Tensor) => (reverse ? tf.reverse(t, axis) : t);
  const [xs, g] = [flip(x), flip(dy)];
  /** t moved d places towards the start along the axis, zeros shifted in at the end. */
  const ahead = (t: tf.Tensor, d: number) => {
    if (d >= n) return tf.zerosLike(t);
    const kept = tf.slice(t, x.shape.map((_, i) => (i === axis ? d : 0)), x.shape.map((s, i) => (i === axis ? n - d : s)));
    return tf.concat([kept, tf.zeros(x.shape.map((s, i) => (i === axis ? d : s)))], axis);
  };
  let a = ahead(xs, 1);
  let b = exclusive ? ahead(g, 1) : g;
  for (let d = 1; d < n; d *= 2) {
    b = tf.add(b, tf.mul(a, ahead(b, d)));
    a = tf.mul(a, ahead(a, d));
  }
  return flip(tf.mul(tf.cumprod(xs, axis, true), b));
}
