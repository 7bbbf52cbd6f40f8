import * as tf from '@tensorflow/tfjs';
import { checkBatchLabels } from '../data/labels';
import { ErrorCodes, TapfitError } from '../errors';
import { suggest } from '../options';
import type { Metric } from '../services/tokens';
import { losses, type LossSpec } from './losses';

/**
 * A metric as `model.compile` takes it: a name, a `{ name, fn }` object, or a function
 * (yTrue, yPred) => tensor. Either form of function may return the batch's value (a scalar)
 * or one value per sample (averaged over the batch, as model.fit averages them).
 */
// `(string & {})`: names held in a `string[]` (model.compile's type) still compile, while editors offer the names.
export type MetricSpec = MetricName | (string & {}) | NamedMetric | ((yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor);

/** A metric with its log name: `fn` returns a scalar or one value per sample (averaged). */
export interface NamedMetric {
  readonly name: string;
  fn(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor;
}

const float = (t: tf.Tensor): tf.Tensor => tf.cast(t, 'float32');

/** Arg-max equals the label; labels one-hot [N, C] or class indices [N] (or [N, 1]). */
function classAccuracy(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor {
  const predicted = tf.argMax(yPred, -1);
  if (yTrue.rank === yPred.rank && yTrue.shape[yTrue.rank - 1] !== 1) return float(tf.equal(tf.argMax(yTrue, -1), predicted));
  // Class indices [N] out of range would just never match: refuse them. ([N, 1] may be regression targets.)
  if (yTrue.rank < yPred.rank) checkBatchLabels(yTrue, yPred, { dense: false });
  return float(tf.equal(tf.cast(tf.reshape(yTrue, predicted.shape), 'int32'), predicted));
}

/** 0/1 targets against probabilities thresholded at 0.5 (tfjs's binaryAccuracy), or logits at 0. */
const binaryAccuracy =
  (threshold: number) =>
  (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor =>
    tf.mean(float(tf.equal(float(yTrue), float(tf.greater(yPred, threshold)))), -1);

/** Per-sample metric functions by the names `model.compile` accepts (plus a few long forms). */
const byName = {
  binaryAccuracy: binaryAccuracy(0.5),
  categoricalAccuracy: classAccuracy,
  sparseCategoricalAccuracy: classAccuracy,
  precision: (yTrue, yPred) => tf.metrics.precision(yTrue, yPred),
  recall: (yTrue, yPred) => tf.metrics.recall(yTrue, yPred),
  categoricalCrossentropy: (yTrue, yPred) => losses.categoricalCrossentropy(yTrue, yPred),
  sparseCategoricalCrossentropy: (yTrue, yPred) => losses.sparseCategoricalCrossentropy(yTrue, yPred),
  binaryCrossentropy: (yTrue, yPred) => losses.binaryCrossentropy(yTrue, yPred),
  mse: (yTrue, yPred) => tf.metrics.meanSquaredError(yTrue, yPred),
  mae: (yTrue, yPred) => tf.metrics.meanAbsoluteError(yTrue, yPred),
  mape: (yTrue, yPred) => tf.metrics.meanAbsolutePercentageError(yTrue, yPred),
  cosine: (yTrue, yPred) => tf.metrics.cosineProximity(yTrue, yPred),
} satisfies Record<string, (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor>;
const aliases = {
  MSE: 'mse',
  meanSquaredError: 'mse',
  MAE: 'mae',
  meanAbsoluteError: 'mae',
  MAPE: 'mape',
  meanAbsolutePercentageError: 'mape',
  cosineProximity: 'cosine',
} as const satisfies Record<string, keyof typeof byName>;

/** The metric names `resolveMetrics` (and `TrainerOptions.metrics`) takes; editors offer them. An unknown one is refused when the trainer is built. */
export type MetricName = 'accuracy' | 'acc' | 'crossentropy' | 'ce' | keyof typeof byName | keyof typeof aliases;

/** The metric names `resolveMetrics` accepts. */
export const METRIC_NAMES: readonly MetricName[] = Object.freeze(['accuracy', 'acc', 'crossentropy', 'ce', ...(Object.keys(byName) as MetricName[]), ...(Object.keys(aliases) as MetricName[])]);

/** Metrics asMetric made: their fn already returns the batch mean, so resolving them again adds no op to the step. */
const batchMeans = new WeakSet<Metric>();

const asMetric = (name: string, perSample: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Tensor): Metric => {
  const metric: Metric = { name, fn: (yTrue, yPred) => tf.tidy(() => tf.mean(perSample(yTrue, yPred)) as tf.Scalar) };
  batchMeans.add(metric);
  return metric;
};

/**
 * Fraction of samples whose arg-max prediction equals the label (labels one-hot or class
 * indices). Named 'acc', as `model.compile({ metrics: ['accuracy'] })` names it.
 */
export const accuracy: Metric = asMetric('acc', classAccuracy);

/**
 * Metrics as `model.compile` resolves them, named as tfjs names them in logs and history:
 * 'accuracy'/'acc' become 'acc' (binary accuracy when the loss is a binary cross-entropy or
 * the model has one output unit, class accuracy otherwise), 'crossentropy'/'ce' become 'ce',
 * any other name keeps its spelling ('mse' stays 'mse'), a function keeps its `name`.
 * Every value is the batch mean, averaged over an epoch weighted by batch size.
 */
export function resolveMetrics(given: readonly MetricSpec[] | MetricSpec, context: { loss?: LossSpec; outputUnits?: number } = {}): Metric[] {
  // model.compile takes a lone metric too ('accuracy').
  const specs: readonly MetricSpec[] = Array.isArray(given) ? given : [given as MetricSpec];
  const binaryLoss = context.loss === 'binaryCrossentropy' || context.loss === 'sigmoidCrossEntropy';
  const binary = binaryLoss || context.outputUnits === 1;
  const metrics = specs.map((spec, i): Metric => {
    if (typeof spec === 'function') return asMetric(spec.name || `metric${i}`, spec);
    if (typeof spec === 'object' && spec !== null && typeof spec.fn === 'function' && typeof spec.name === 'string') {
      // Per-sample values (every tf.metrics function, a Keras-style metric) are averaged as a bare function's are.
      return batchMeans.has(spec as Metric) ? (spec as Metric) : asMetric(spec.name, (yTrue, yPred) => spec.fn(yTrue, yPred));
    }
    if (typeof spec !== 'string') {
      throw new TapfitError(ErrorCodes.CONFIG, `metrics[${i}]: expected a metric name, a { name, fn } metric or a function (yTrue, yPred) => tensor, got ${String(spec)}.`);
    }
    if (spec === 'accuracy' || spec === 'acc') {
      // tapfit's sigmoidCrossEntropy takes logits: a sigmoid above 0.5 is a logit above 0.
      return asMetric('acc', binary ? binaryAccuracy(context.loss === 'sigmoidCrossEntropy' ? 0 : 0.5) : classAccuracy);
    }
    if (spec === 'crossentropy' || spec === 'ce') {
      return asMetric('ce', binary ? byName.binaryCrossentropy : context.loss === 'sparseCategoricalCrossentropy' ? byName.sparseCategoricalCrossentropy : byName.categoricalCrossentropy);
    }
    // `spec` may be any string here (JavaScript, configs): look it up as one.
    const key: string = (aliases as Record<string, string>)[spec] ?? spec;
    const fn = Object.hasOwn(byName, key) ? byName[key as keyof typeof byName] : undefined;
    if (!fn) {
      const hint = suggest(spec, METRIC_NAMES).replace(/ \(valid: .*\)$/, '');
      throw new TapfitError(ErrorCodes.CONFIG, `metrics[${i}]: unknown metric '${spec}'${hint}. Accepted names: ${METRIC_NAMES.join(', ')}; or pass a { name, fn } metric or a function (yTrue, yPred) => tensor.`);
    }
    return asMetric(spec, fn);
  });
  const seen = new Set<string>();
  for (const m of metrics) {
    if (m.name === 'loss' || seen.has(m.name)) {
      throw new TapfitError(ErrorCodes.CONFIG, `metrics: the name '${m.name}' is ${m.name === 'loss' ? 'reserved for the loss' : 'used twice'}; each metric needs its own name in logs and history.`);
    }
    seen.add(m.name);
  }
  return metrics;
}
