import * as tf from '@tensorflow/tfjs';

/** Tensors keyed by parameter name (a tf.Variable's `name`). Gradients, updates and
 * per-parameter optimizer state all use this shape, so transforms compose by key. */
export type NamedTensors = Record<string, tf.Tensor>;

/** Apply `fn` to every entry, keeping the keys. */
export function mapNamed(xs: NamedTensors, fn: (x: tf.Tensor, name: string) => tf.Tensor): NamedTensors {
  const out: NamedTensors = {};
  for (const name of Object.keys(xs)) out[name] = fn(xs[name], name);
  return out;
}

/** Zeros shaped like each entry (the usual initial optimizer state). */
export function zerosLikeNamed(xs: NamedTensors): NamedTensors {
  return mapNamed(xs, (x) => tf.zerosLike(x));
}
