import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';

/**
 * Class labels come as indices (`sparse`: one integer per sample, rank one less than
 * the predictions) or as rows of class probabilities (`dense`: one-hot or soft, same
 * rank as the predictions). Out-of-range labels do not make tfjs fail: an index of 5
 * with 3 classes one-hots to a zero row and its loss is 0, so training silently
 * ignores the sample. These checks reject them instead.
 */
export type LabelKind = 'sparse' | 'dense';

/** How far a dense label row's sum may be from 1 (float32 soft labels, label smoothing). */
export const LABEL_SUM_TOLERANCE = 1e-3;

/**
 * Whether every value is a whole number (a flat y of them is read as class indices). Reads
 * a typed array in place and stops at the first fraction: a copy into a JS array (Array.from)
 * fails past V8's ~134M elements.
 */
export function allWholeNumbers(values: ArrayLike<number>): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isInteger(values[i])) return false;
  return true;
}

export function labelKind(labelRank: number, predRank: number): LabelKind | null {
  return labelRank === predRank - 1 ? 'sparse' : labelRank === predRank ? 'dense' : null;
}

/**
 * Checks label values on the host against `classes` model outputs. `shape` is the
 * labels' full shape (samples first); `where` names them in the message ('the data',
 * 'the batch'). Throws a TapfitError (TAPFIT_E_LABELS) naming the first offending
 * sample, its value and the valid range.
 */
export function checkLabelValues(values: ArrayLike<number>, shape: readonly number[], classes: number, kind: LabelKind, where: string): void {
  const samples = shape[0] ?? 1;
  const perSample = samples > 0 ? values.length / samples : 1;
  if (kind === 'sparse') {
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (Number.isInteger(v) && v >= 0 && v < classes) continue;
      throw labelsError(
        `sample ${Math.floor(i / perSample)} of ${where} has class index ${show(v)}, but class indices must be integers in [0, ${classes - 1}] ` +
          `(the model outputs ${classes} classes). Fix that label, or give the model's last layer as many units as there are classes.`,
      );
    }
    return;
  }
  const width = shape[shape.length - 1];
  if (width !== classes) {
    throw labelsError(
      `one-hot labels of ${where} have ${width} classes (shape [${shape.join(',')}]) but the model outputs ${classes}. ` +
        `Encode the labels with ${classes} classes, or give the model's last layer ${width} units.`,
    );
  }
  const rowsPerSample = perSample / width;
  for (let start = 0; start < values.length; start += width) {
    let sum = 0;
    for (let j = 0; j < width; j++) {
      const v = values[start + j];
      if (!(v >= 0 && v <= 1)) {
        throw labelsError(
          `sample ${Math.floor(start / width / rowsPerSample)} of ${where} has ${show(v)} for class ${j}, but one-hot / probability labels must be in [0, 1]. ` +
            'Pass class probabilities, or integer class indices (one per sample) instead.',
        );
      }
      sum += v;
    }
    if (Math.abs(sum - 1) > LABEL_SUM_TOLERANCE) {
      throw labelsError(
        `the label row of sample ${Math.floor(start / width / rowsPerSample)} of ${where} sums to ${show(sum)}, but one-hot / probability labels must sum to 1 ` +
          `(within ${LABEL_SUM_TOLERANCE}; label smoothing keeps the sum at 1). Normalise the row, or pass integer class indices instead.`,
      );
    }
  }
}

/** float32 values as they were written (1.7, not 1.7000000476837158). */
function show(v: number): string {
  return Number.isFinite(v) ? String(Number(v.toPrecision(7))) : String(v);
}

function labelsError(message: string): TapfitError {
  return new TapfitError(ErrorCodes.LABELS, `labels: ${message}`);
}

/** A data source that checks its labels as a whole, once, on its host copy. */
export interface LabelSource {
  /** Throws like `checkLabelValues` when the labels do not fit `classes` outputs of rank `predRank`; cached. */
  checkLabels(classes: number, predRank: number): void;
}

const sources = new WeakMap<tf.Tensor, LabelSource>();

/** Marks a batch's label tensor as coming from `source`, so the loss checks the source (once) instead of the batch. */
export function markLabelSource(labels: tf.Tensor, source: LabelSource): void {
  sources.set(labels, source);
}

const wholeTensors = new WeakMap<tf.Tensor, LabelSource>();

/**
 * The labels of a whole tensor as one source: read back once, at the first check (per
 * class count), however many batches are cut from it and however often it is evaluated on.
 * A tf.Variable's values change with assign(): its source is not kept between calls.
 */
export function tensorLabelSource(labels: tf.Tensor): LabelSource {
  let source = labels instanceof tf.Variable ? undefined : wholeTensors.get(labels);
  if (!source) {
    const validFor = new Set<string>();
    source = {
      checkLabels(classes, predRank) {
        const key = `${classes}/${predRank}`;
        if (validFor.has(key)) return;
        const kind = labelKind(labels.rank, predRank);
        if (kind) checkLabelValues(labels.dataSync() as ArrayLike<number>, labels.shape, classes, kind, 'the labels');
        validFor.add(key);
      },
    };
    if (!(labels instanceof tf.Variable)) wholeTensors.set(labels, source);
  }
  return source;
}

/** Batch label tensors already checked, by class count and prediction rank: the loss and the accuracy metric check the same batch. */
const checkedBatches = new WeakMap<tf.Tensor, Set<string>>();

/** Host-memory backends: reading a tensor there is a copy, not a device round-trip. */
const HOST_BACKENDS = new Set(['cpu', 'wasm']);

/**
 * The label check of the built-in classification losses (and, for `dense: false`,
 * the accuracy metric): the class count always; the values once per source for
 * marked batches (TensorData's), else per batch where that is cheap: sparse labels
 * (one number per sample) always, dense labels on host-memory backends only (on a
 * GPU it would add a read-back to every step).
 */
export function checkBatchLabels(yTrue: tf.Tensor, yPred: tf.Tensor, options: { dense: boolean } = { dense: true }): void {
  const kind = labelKind(yTrue.rank, yPred.rank);
  const classes = yPred.shape[yPred.rank - 1];
  if (!kind || classes === undefined) return;
  if (kind === 'dense' && yTrue.shape[yTrue.rank - 1] !== classes) {
    checkLabelValues([], yTrue.shape, classes, 'dense', 'the batch'); // throws the class-count error
  }
  if (kind === 'dense' && !options.dense) return;
  const source = sources.get(yTrue);
  if (source) return source.checkLabels(classes, yPred.rank);
  if (kind === 'dense' && !HOST_BACKENDS.has(tf.getBackend())) return;
  const key = `${classes}/${yPred.rank}`;
  if (checkedBatches.get(yTrue)?.has(key)) return;
  checkLabelValues(yTrue.dataSync() as ArrayLike<number>, yTrue.shape, classes, kind, 'the batch');
  if (!(yTrue instanceof tf.Variable)) checkedBatches.set(yTrue, (checkedBatches.get(yTrue) ?? new Set()).add(key)); // a Variable's values change
}
