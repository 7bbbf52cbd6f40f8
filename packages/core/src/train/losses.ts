import * as tf from '@tensorflow/tfjs';
import type { DataSource } from '../data/data-source';
import { checkBatchLabels, type LabelSource } from '../data/labels';
import { ErrorCodes, TapfitError } from '../errors';
import { suggest } from '../options';
import type { LossFn } from '../services/tokens';

/** Class labels as one-hot: accepts int class indices [N] or one-hot [N, C], each checked against the C outputs. */
export function oneHotLike(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor {
  checkBatchLabels(yTrue, yPred);
  if (yTrue.rank === yPred.rank) return yTrue;
  if (yTrue.rank === 1 && yPred.rank === 2) return tf.oneHot(tf.cast(yTrue, 'int32'), yPred.shape[1]!);
  throw new TapfitError(ErrorCodes.SHAPE, `labels of shape [${yTrue.shape}] do not fit predictions of shape [${yPred.shape}]: pass class indices [N] or one-hot [N, C].`);
}

/** The fuzz factor tfjs-layers' losses use: the backend's epsilon (1e-7 on float32 backends). */
const eps = (): number => tf.backend().epsilon();

/**
 * Class indices [N] or [N, 1] as one-hot [N, C]: int32 (what fit and arrayData make of a
 * label list) or floats, which tfjs floors (tf.floor takes only floats, hence the dtype test).
 */
function sparseOneHot(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor {
  const classes = yPred.shape[yPred.rank - 1]!;
  const indices = tf.reshape(yTrue, [-1]);
  checkBatchLabels(indices, tf.reshape(yPred, [-1, classes]));
  const whole = indices.dtype === 'float32' ? tf.floor(indices) : indices;
  return tf.reshape(tf.oneHot(tf.cast(whole, 'int32'), classes), yPred.shape);
}

type PerSample = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;

/** A per-sample loss (reduced over the last axis, as tfjs-layers' losses) as a batch mean. */
const batchMean =
  (perSample: PerSample): LossFn =>
  (yTrue, yPred) =>
    tf.tidy(() => tf.mean(perSample(yTrue, yPred)) as tf.Scalar);

const positivePart = (x: tf.Tensor): tf.Tensor => tf.maximum(x, 0);

/** Each named loss per sample: tfjs-layers' definitions, reduced over the last axis only. */
const perSampleLosses = {
  softmaxCrossEntropy: ((yTrue, yPred) =>
    tf.losses.softmaxCrossEntropy(oneHotLike(yTrue, yPred), yPred, undefined, undefined, tf.Reduction.NONE)) as PerSample,
  sigmoidCrossEntropy: ((yTrue, yPred) => tf.mean(tf.losses.sigmoidCrossEntropy(yTrue, yPred, undefined, undefined, tf.Reduction.NONE), -1)) as PerSample,
  categoricalCrossentropy: ((yTrue, yPred) => tf.metrics.categoricalCrossentropy(oneHotLike(yTrue, yPred), yPred)) as PerSample,
  sparseCategoricalCrossentropy: ((yTrue, yPred) =>
    tf.metrics.categoricalCrossentropy(sparseOneHot(yTrue, yPred), tf.clipByValue(yPred, eps(), 1 - eps()))) as PerSample,
  binaryCrossentropy: ((yTrue, yPred) => tf.metrics.binaryCrossentropy(yTrue, yPred)) as PerSample,
  meanSquaredError: ((yTrue, yPred) => tf.metrics.meanSquaredError(yTrue, yPred)) as PerSample,
  meanAbsoluteError: ((yTrue, yPred) => tf.metrics.meanAbsoluteError(yTrue, yPred)) as PerSample,
  meanAbsolutePercentageError: ((yTrue, yPred) => tf.metrics.meanAbsolutePercentageError(yTrue, yPred)) as PerSample,
  meanSquaredLogarithmicError: ((yTrue, yPred) => {
    const log1p = (t: tf.Tensor) => tf.log(tf.add(1, tf.clipByValue(t, eps(), Number.MAX_VALUE)));
    return tf.mean(tf.square(tf.sub(log1p(yPred), log1p(yTrue))), -1);
  }) as PerSample,
  /** Targets in {-1, 1}: mean of max(0, 1 - y p)^2. */
  squaredHinge: ((yTrue, yPred) => tf.mean(tf.square(positivePart(tf.sub(1, tf.mul(yTrue, yPred)))), -1)) as PerSample,
  /** Targets in {-1, 1}: mean of max(0, 1 - y p). */
  hinge: ((yTrue, yPred) => tf.mean(positivePart(tf.sub(1, tf.mul(yTrue, yPred))), -1)) as PerSample,
  /** One-hot targets: max(0, 1 + max_{wrong} p - p_{true}). */
  categoricalHinge: ((yTrue, yPred) => {
    const truth = tf.sum(tf.mul(yTrue, yPred), -1);
    const best = tf.max(tf.mul(tf.sub(1, yTrue), yPred), -1);
    return positivePart(tf.add(1, tf.sub(best, truth)));
  }) as PerSample,
  /** log(cosh(p - y)), computed stably as d + softplus(-2d) - log 2. */
  logcosh: ((yTrue, yPred) => {
    const d = tf.sub(yPred, yTrue);
    return tf.mean(tf.sub(tf.add(d, tf.softplus(tf.mul(-2, d))), Math.log(2)), -1);
  }) as PerSample,
  kullbackLeiblerDivergence: ((yTrue, yPred) =>
    tf.sum(tf.mul(yTrue, tf.log(tf.div(tf.clipByValue(yTrue, eps(), 1), tf.clipByValue(yPred, eps(), 1)))), -1)) as PerSample,
  poisson: ((yTrue, yPred) => tf.mean(tf.sub(yPred, tf.mul(yTrue, tf.log(tf.add(yPred, eps())))), -1)) as PerSample,
  cosineProximity: ((yTrue, yPred) => tf.metrics.cosineProximity(yTrue, yPred)) as PerSample,
};

/**
 * Losses by name: every name `model.compile` accepts (tfjs-layers' definitions: mean over
 * the last axis, then over the batch), plus the logits forms `softmaxCrossEntropy` and
 * `sigmoidCrossEntropy`. Categorical cross-entropies also take class indices [N].
 */
export const losses = {
  ...(Object.fromEntries(Object.entries(perSampleLosses).map(([name, f]) => [name, batchMean(f)])) as Record<keyof typeof perSampleLosses, LossFn>),
  // tf.losses' reductions for the three original ones, so their values stay bit for bit.
  /** Cross-entropy of logits (the model has no final softmax). */
  softmaxCrossEntropy: ((yTrue, yPred) => tf.losses.softmaxCrossEntropy(oneHotLike(yTrue, yPred), yPred) as tf.Scalar) as LossFn,
  /** Cross-entropy of logits for 0/1 targets (the model has no final sigmoid). */
  sigmoidCrossEntropy: ((yTrue, yPred) => tf.losses.sigmoidCrossEntropy(yTrue, yPred) as tf.Scalar) as LossFn,
  meanSquaredError: ((yTrue, yPred) => tf.losses.meanSquaredError(yTrue, yPred) as tf.Scalar) as LossFn,
};

/**
 * A loss with per-sample weights, as model.fit applies `classWeight`: mean(loss per sample *
 * weight of the sample's class). `loss` is a name, or a function that returns one loss per
 * sample ([N]; a batch mean has nothing left to weigh, so it is refused).
 */
export function classWeightedLoss(loss: LossName | LossFunction, weightOf: (yTrue: tf.Tensor) => tf.Tensor): LossFn {
  const perSample = typeof loss === 'function' ? perSampleOf(loss) : perSampleLosses[loss];
  return (yTrue, yPred) => tf.tidy(() => tf.mean(tf.mul(perSample(yTrue, yPred), weightOf(yTrue))) as tf.Scalar);
}

/** A loss function's per-sample losses [N], checked. */
const perSampleOf =
  (fn: LossFunction): PerSample =>
  (yTrue, yPred) => {
    const value = lossValue(fn, yTrue, yPred);
    if (value.rank !== 1 || value.shape[0] !== yPred.shape[0]) {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `fit: classWeight with a loss function needs one loss per sample from it (shape [${yPred.shape[0]}] for this batch), but it returned shape [${value.shape}]. ` +
          'Return the per-sample losses unreduced (model.fit multiplies them by the class weights, then averages), or use a named loss.',
      );
    }
    return value;
  };

/** What a loss function returns, refused unless it is a tensor. */
function lossValue(fn: LossFunction, yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor {
  const value: unknown = fn(yTrue, yPred);
  if (typeof (value as tf.Tensor | undefined)?.rank !== 'number') {
    throw new TapfitError(ErrorCodes.CONFIG, `loss: the loss function returned ${value === null ? 'null' : typeof value}, not a tensor. Return a scalar, or one loss per sample (averaged, as model.fit averages them).`);
  }
  return value as tf.Tensor;
}

/** Each loss function given, as the trainer uses it; one wrapper per function, so the trainer can tell a plugin's decoration from it. */
const batchLosses = new WeakMap<LossFunction, LossFn>();

/**
 * A loss function as model.compile takes it: a scalar is used as it is; per-sample losses
 * ([N], or any shape) are averaged over all their elements, as model.fit's training and
 * test functions average what the loss returns (tf.mean).
 */
function batchLossOf(fn: LossFunction): LossFn {
  let batchLoss = batchLosses.get(fn);
  if (!batchLoss) {
    batchLoss = (yTrue, yPred) =>
      tf.tidy(() => {
        const value = lossValue(fn, yTrue, yPred);
        return (value.rank === 0 ? value : tf.mean(value)) as tf.Scalar;
      });
    batchLosses.set(fn, batchLoss);
  }
  return batchLoss;
}

/** The built-in losses that take class labels. */
const classLosses = new Set<LossFn>([losses.softmaxCrossEntropy, losses.categoricalCrossentropy]); // (sparse [N, 1] labels are checked per batch)

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
/** A loss function as model.compile takes it: a batch mean (scalar), or one loss per sample (averaged). */
export type LossFunction = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor;
export type LossSpec = LossName | LossFunction;

/** The names `resolveLoss` accepts. */
export const LOSS_NAMES = Object.freeze(Object.keys(losses) as LossName[]);

export function resolveLoss(spec: LossSpec): LossFn {
  if (typeof spec === 'function') return batchLossOf(spec);
  const fn = typeof spec === 'string' && Object.hasOwn(losses, spec) ? losses[spec as LossName] : undefined;
  if (!fn) {
    const hint = typeof spec === 'string' ? suggest(spec, LOSS_NAMES).replace(/ \(valid: .*\)$/, '') : '';
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `unknown loss ${typeof spec === 'string' ? `'${spec}'` : String(spec)}${hint}. Use one of ${LOSS_NAMES.join(', ')}, or pass a function (yTrue, yPred) => the batch's loss (a scalar) or one loss per sample.`,
    );
  }
  return fn;
}
