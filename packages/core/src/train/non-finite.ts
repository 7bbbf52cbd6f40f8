import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/data-source';
import { ErrorCodes, TapfitError } from '../errors';
import type { StepInfo } from '../hooks/types';

/**
 * What the non-finite guard says when a step's loss is NaN or infinite. Everything here
 * runs only on that failure path, so it may read back: the usual advice (a smaller
 * learning rate) is wrong when the batch itself holds NaN, or when the weights were
 * already non-finite because an earlier update with a finite loss (a NaN gradient, such
 * as sqrt or a norm at 0) diverged them, which no later step can undo.
 */
export interface NonFiniteCause {
  /** "x" or "y" and the first sample of the batch holding NaN or Infinity. */
  data?: { tensor: 'x' | 'y'; sample: number };
  /** Names of the variables holding NaN or Infinity. */
  weights: string[];
}

export function nonFiniteCause(batch: Batch, variables: readonly tf.Variable[]): NonFiniteCause {
  const data = firstBadSample(batch.x, 'x') ?? firstBadSample(batch.y, 'y');
  const bad = tf.tidy(() => tf.stack(variables.map((v) => notAllFinite(v))).dataSync());
  return { ...(data ? { data } : {}), weights: variables.filter((_, i) => bad[i]).map((v) => v.name) };
}

/** Whether any of `tensors` holds NaN or Infinity: one scalar read back. */
export function anyNonFinite(tensors: readonly tf.Tensor[]): boolean {
  if (!tensors.length) return false;
  return tf.tidy(() => tf.any(tf.stack(tensors.map((t) => notAllFinite(t)))).dataSync()[0] === 1);
}

export function nonFiniteError(value: number, info: StepInfo, cause: NonFiniteCause, mode: 'throw' | 'skip'): TapfitError {
  const at = `non-finite loss (${value}) at step ${info.step} (epoch ${info.epoch}, batch ${info.batch})`;
  if (cause.weights.length) {
    const names = cause.weights.slice(0, 3).join(', ') + (cause.weights.length > 3 ? `, and ${cause.weights.length - 3} more` : '');
    return new TapfitError(
      ErrorCodes.NON_FINITE,
      `${at}: the weights were already non-finite (${names}), so an earlier update diverged${cause.data ? ` (and the batch's ${cause.data.tensor} holds NaN or Infinity at sample ${cause.data.sample} of the batch)` : ''}; ` +
        `no update was applied at this step${mode === 'skip' ? ", and nonFinite: 'skip' cannot recover (every later step would be skipped)" : ''}. ` +
        'Resume from a checkpoint saved before the divergence and lower the learning rate or add clipByGlobalNorm; a loss with a NaN gradient at a finite value (sqrt or a norm at 0) needs an epsilon.',
    );
  }
  if (cause.data) {
    return new TapfitError(
      ErrorCodes.NON_FINITE,
      `${at}: the batch's ${cause.data.tensor} holds NaN or Infinity (sample ${cause.data.sample} of the batch); no update was applied. ` +
        "Clean the data, or pass nonFinite: 'skip' to skip such batches.",
    );
  }
  return new TapfitError(ErrorCodes.NON_FINITE, `${at}; no update was applied. Lower the learning rate, add clipByGlobalNorm, or pass nonFinite: 'skip' to skip such steps.`);
}

/** The error when every step of an epoch was skipped for a non-finite loss: the epoch trained nothing. */
export function everyStepSkipped(epoch: number, steps: number): TapfitError {
  return new TapfitError(
    ErrorCodes.NON_FINITE,
    `every step of epoch ${epoch} (${steps}) had a non-finite loss and was skipped (nonFinite: 'skip'): the epoch trained nothing, and skipping cannot change that. ` +
      'Check the data for NaN or Infinity; if it is clean, the run has diverged: resume from a checkpoint saved before the divergence and lower the learning rate or add clipByGlobalNorm.',
  );
}

/** A bool scalar: t holds NaN or Infinity (integer tensors never do). */
function notAllFinite(t: tf.Tensor): tf.Tensor {
  return t.dtype === 'float32' ? tf.logicalNot(tf.all(tf.isFinite(t))) : tf.scalar(false, 'bool');
}

function firstBadSample(t: tf.Tensor, tensor: 'x' | 'y'): NonFiniteCause['data'] {
  if (t.dtype !== 'float32' || t.size === 0) return undefined;
  const rows = t.shape[0] ?? 1;
  const bad = tf.tidy(() => tf.logicalNot(tf.all(tf.isFinite(tf.reshape(t, [rows, -1])), 1)).dataSync());
  const sample = bad.findIndex((b) => b === 1);
  return sample < 0 ? undefined : { tensor, sample };
}
