import * as tf from '@tensorflow/tfjs';
import type { DataSource } from '../data/data-source';
import { ErrorCodes, TapfitError } from '../errors';
import type { LossFn, Metric } from '../services/tokens';
import { checkBatchLabels, type LabelSource } from '../data/labels';

/** Class labels as one-hot: accepts int class indices [N] or one-hot [N, C], each checked against the C outputs. */
function oneHotLike(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor {
  checkBatchLabels(yTrue, yPred);
  if (yTrue.rank === yPred.rank) return yTrue;
  if (yTrue.rank === 1 && yPred.rank === 2) return tf.oneHot(tf.cast(yTrue, 'int32'), yPred.shape[1]!);
  throw new TapfitError(ErrorCodes.SHAPE, `labels of shape [${yTrue.shape}] do not fit predictions of shape [${yPred.shape}]: pass class indices [N] or one-hot [N, C].`);
}

export const losses = {
  /** Cross-entropy of logits (the model has no final softmax). */
  softmaxCrossEntropy: ((yTrue, yPred) => tf.losses.softmaxCrossEntropy(oneHotLike(yTrue, yPred), yPred) as tf.Scalar) as LossFn,
  /** Cross-entropy of probabilities (the model ends with a softmax). */
  categoricalCrossentropy: ((yTrue, yPred) =>
    tf.tidy(() => tf.mean(tf.metrics.categoricalCrossentropy(oneHotLike(yTrue, yPred), yPred)) as tf.Scalar)) as LossFn,
  sigmoidCrossEntropy: ((yTrue, yPred) => tf.losses.sigmoidCrossEntropy(yTrue, yPred) as tf.Scalar) as LossFn,
  meanSquaredError: ((yTrue, yPred) => tf.losses.meanSquaredError(yTrue, yPred) as tf.Scalar) as LossFn,
};

/** The built-in losses that take class labels. */
const classLosses = new Set<LossFn>([losses.softmaxCrossEntropy, losses.categoricalCrossentropy]);

/**
 * Checks a data source's labels against the model's classes (the last output
 * dimension) before training or evaluating, when the loss is a built-in
 * classification loss and the source holds its labels on the host (TensorData):
 * once per source and class count. Other sources are checked batch by batch.
 */
export function checkDataLabels(data: DataSource, loss: LossFn, outputShape: readonly (number | null)[] | undefined): void {
  const classes = outputShape?.[outputShape.length - 1];
  const source = data as Partial<LabelSource>;
  if (!classLosses.has(loss) || !outputShape || !classes || typeof source.checkLabels !== 'function') return;
  source.checkLabels(classes, outputShape.length + 1);
}

export type LossName = keyof typeof losses;
export type LossSpec = LossName | LossFn;

export function resolveLoss(spec: LossSpec): LossFn {
  if (typeof spec === 'function') return spec;
  const fn = losses[spec as LossName];
  if (!fn) throw new TapfitError(ErrorCodes.CONFIG, `unknown loss '${spec}'. Use one of ${Object.keys(losses).join(', ')} or pass a function (yTrue, yPred) => scalar.`);
  return fn;
}

/** Fraction of samples whose arg-max prediction equals the label. */
export const accuracy: Metric = {
  name: 'accuracy',
  fn: (yTrue, yPred) =>
    tf.tidy(() => {
      checkBatchLabels(yTrue, yPred, { dense: false }); // class indices only: same-rank targets may be regression values
      const labels = yTrue.rank === yPred.rank ? tf.argMax(yTrue, -1) : tf.cast(yTrue, 'int32');
      return tf.mean(tf.cast(tf.equal(labels, tf.argMax(yPred, -1)), 'float32')) as tf.Scalar;
    }),
};
