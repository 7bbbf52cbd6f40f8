import * as tf from '@tensorflow/tfjs';
import { scaledSum } from '@tapfit/core';

/** How a stage's forward weights are chosen (docs/techniques.md §5.4). */
export type Prediction = 'none' | 'lwp-velocity' | 'lwp-delta';
export const PREDICTIONS: readonly Prediction[] = ['none', 'lwp-velocity', 'lwp-delta'];

/**
 * Linear Weight Prediction, velocity form: w_hat = w - step * v, with step the sum of the
 * learning rates of the next D updates (D * lr for a constant rate). Exact under a
 * constant gradient once v has settled at g / (1 - m).
 */
export function predictByVelocity(w: tf.Tensor, velocity: tf.Tensor, step: number): tf.Tensor {
  // w + (-step) v rounds as w - step v does (negation is exact): one fused kernel on wasm.
  return step === 0 ? tf.clone(w) : scaledSum(w, 1, velocity, -step);
}

/** Linear Weight Prediction, weight-delta form: w_hat = w + D (w - w_prev). */
export function predictByDelta(w: tf.Tensor, previous: tf.Tensor, delay: number): tf.Tensor {
  return delay === 0 ? tf.clone(w) : tf.add(w, tf.mul(tf.sub(w, previous), delay));
}
