import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { LossFn, Metric } from '../services/tokens';
import { classWeightedLoss, type LossFunction, type LossName } from './losses';

/** What one fit asks of the loss while it runs. */
export interface FitLossState {
  /** Receives each step's metric values (kept; the receiver disposes them). */
  metricSink?: (values: tf.Tensor1D) => void;
  /** Replaces the loss (classWeight). */
  loss?: LossFn;
}

/**
 * The loss the training step differentiates. During fit it also computes the metrics on
 * the same prediction (the step's own forward, so no second forward and no read-back:
 * the values stay on the device for the epoch's means) and applies `classWeight`.
 * Outside fit (trainStep in a custom loop) it is `base` unchanged.
 */
export function fitLoss(base: LossFn, metrics: readonly Metric[], state: () => FitLossState | undefined): LossFn {
  return (yTrue, yPred) => {
    const s = state();
    if (s?.metricSink && metrics.length) {
      s.metricSink(tf.keep(tf.tidy(() => tf.stack(metrics.map((m) => m.fn(yTrue, yPred))) as tf.Tensor1D)));
    }
    return (s?.loss ?? base)(yTrue, yPred);
  };
}

/**
 * model.fit's `classWeight` as a loss: the loss per sample (a named loss, or a function
 * returning per-sample losses) times the weight of the sample's class (class indices [N]
 * or [N, 1], or the arg-max of one-hot labels). Every class 0..classes-1 needs a weight.
 */
export function classWeightLoss(loss: LossName | LossFunction, classWeight: Record<string, number>, classes: number | undefined): LossFn {
  const n = classes ?? Math.max(...Object.keys(classWeight).map(Number)) + 1;
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => classWeight[i] === undefined);
  const extra = Object.keys(classWeight).filter((k) => !(Number.isInteger(Number(k)) && Number(k) >= 0 && Number(k) < n));
  if (missing.length || extra.length) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `fit: classWeight must give a weight to each class 0..${n - 1} (the model has ${n} classes)` +
        `${missing.length ? `; missing: ${missing.join(', ')}` : ''}${extra.length ? `; not a class: ${extra.join(', ')}` : ''}.`,
    );
  }
  const weights = Array.from({ length: n }, (_, i) => classWeight[i]);
  return classWeightedLoss(loss, (yTrue) => {
    const classes = yTrue.rank === 2 && yTrue.shape[1]! > 1 ? tf.argMax(yTrue, 1) : tf.cast(tf.reshape(yTrue, [-1]), 'int32');
    return tf.gather(tf.tensor1d(weights), classes);
  });
}
