import * as tf from '@tensorflow/tfjs';
import type { NamedTensors } from '@tapfit/core';

export interface BrakingScaleOptions {
  rho: number;
  granularity: 'tensor' | 'global';
  eps: number;
}

/** The three reductions a cosine needs. */
interface Moments {
  dot: tf.Scalar;
  gg: tf.Scalar;
  vv: tf.Scalar;
}

/**
 * alpha = 1 - rho * cos(g, v) for every gradient entry (docs/techniques.md §4.2), as scalar
 * tensors keyed like `grads`. With granularity 'global' every key maps to the same
 * tensor. `velocity` must hold an entry of the same shape for each gradient.
 */
export function brakingScales(grads: NamedTensors, velocity: NamedTensors, o: BrakingScaleOptions): NamedTensors {
  const keys = Object.keys(grads);
  const moments = keys.map((k) => momentsOf(grads[k], velocity[k]));
  if (o.granularity === 'tensor') {
    return Object.fromEntries(keys.map((k, i) => [k, scaleOf(moments[i], o)]));
  }
  const sum = (pick: (m: Moments) => tf.Scalar) => (moments.length === 0 ? tf.scalar(0) : (tf.addN(moments.map(pick)) as tf.Scalar));
  const shared = scaleOf({ dot: sum((m) => m.dot), gg: sum((m) => m.gg), vv: sum((m) => m.vv) }, o);
  return Object.fromEntries(keys.map((k) => [k, shared]));
}

function momentsOf(g: tf.Tensor, v: tf.Tensor): Moments {
  return { dot: tf.sum(tf.mul(g, v)), gg: tf.sum(tf.square(g)), vv: tf.sum(tf.square(v)) };
}

/**
 * cos = <g, v> / max(||g|| ||v||, eps), clipped to [-1, 1] against rounding. When either
 * norm is 0, <g, v> is 0 too, so the cosine is exactly 0 and alpha exactly 1 (no NaN):
 * the first step (v = 0) and a zero gradient are not braked. The norms are multiplied
 * rather than their squares so that the product underflows/overflows later.
 */
function scaleOf({ dot, gg, vv }: Moments, o: BrakingScaleOptions): tf.Scalar {
  const norms = tf.maximum(tf.mul(tf.sqrt(gg), tf.sqrt(vv)), o.eps);
  const cosine = tf.clipByValue(tf.div(dot, norms), -1, 1);
  return tf.sub(1, tf.mul(cosine, o.rho)) as tf.Scalar;
}
