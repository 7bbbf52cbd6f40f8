import * as tf from '@tensorflow/tfjs';
import { uploadingBatch } from './batch-upload';
import { kernelDepth, liveVariables } from './engine-internals';

/** A refused allocation, as the advice needs it. */
export interface RefusedAllocation {
  backendName: string;
  bytes: number;
  /** The bytes that were available to it: the budget, or the heap's size. */
  limitBytes: number;
}

/**
 * What to do about a refused allocation (TAPFIT_E_MEMORY), for the kind of tensor refused:
 * a smaller batch does not help when the model's own weights, gradients and optimizer
 * state do not fit, nor when a whole dataset is uploaded at once.
 *
 * - the size of a variable, when the variables are a large part of the limit (with their
 *   gradients and Adam's two moments they need four times their size) or the tensor is:
 *   a weight, its gradient or optimizer state; the model does not fit the backend.
 * - one batch cut on the host (asBatchUpload: arrayData, fit(x, y) with arrays, datasetData's
 *   plain values): the rest of the data is off the backend already; a smaller batch.
 * - another large tensor made outside any op: data uploaded at once (tf.tensor, tensorData,
 *   evaluate / predict with arrays); keep it on the host (arrayData) or stream it.
 * - a tensor made by an op: in a step, mostly activations kept for the backward; a
 *   smaller batch, or recomputation with memoryBudget.
 */
export function memoryAdvice(refused: RefusedAllocation): string {
  const { backendName, bytes, limitBytes } = refused;
  const variables = liveVariables();
  const bytesOf = (v: tf.Variable) => v.size * tf.util.bytesPerElement(v.dtype);
  const weights = variables.reduce((a, v) => a + bytesOf(v), 0);
  const twin = variables.find((v) => bytesOf(v) === bytes);
  if (twin && (weights * 4 >= limitBytes || bytes * 16 >= limitBytes)) {
    const elsewhere = backendName === 'wasm' ? "selectBackend('cpu') or @tensorflow/tfjs-node (neither has wasm's 4 GiB heap)" : '@tensorflow/tfjs-node, or a larger budget';
    return (
      `The tensor has the size of the variable '${twin.name}' (a weight, its gradient or optimizer state): the model itself does not fit. ` +
      `The live variables take ${formatBytes(weights)}, and training needs as much again for their gradients, plus the optimizer's state (momentum: once more, Adam: twice). ` +
      `A smaller batch does not help: use ${elsewhere}, or a smaller model.`
    );
  }
  const dispose = 'Dispose tensors you no longer need (tf.tidy / dispose).';
  if (kernelDepth() > 0) {
    return (
      `${dispose} The tensor was made by an op; in a training step most memory is the activations kept for the backward: ` +
      'use a smaller batch, or memoryBudget({ budgetBytes, sample }) to recompute activations in the backward instead of keeping them.'
    );
  }
  if (uploadingBatch()) {
    return `${dispose} The tensor is one batch of data, uploaded as it was cut (the rest of the data is not on the backend): use a smaller batchSize.`;
  }
  if (bytes * 8 >= limitBytes) {
    return (
      `${dispose} The tensor was made outside any op, as data uploaded at once: a dataset made into one tensor (e.g. tf.tensor, tensorData(x, y), evaluate or predict given arrays) is all on the backend. ` +
      'arrayData({ x, y }) and fit(x, y) given arrays keep the data on the host and upload one batch at a time; datasetData(dataset) streams it.'
    );
  }
  return `${dispose} Or use a smaller batch.`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} B`;
}
