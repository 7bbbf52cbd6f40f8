import type * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { NamedTensors } from '../tensors';

/**
 * The per-parameter buffer (velocity, moment, weight) that goes with update `key`,
 * checked to exist and to have the update's shape: without the check a missing key
 * fails deep inside tf and a [1]-shaped buffer would silently broadcast.
 */
export function bufferFor(buffers: NamedTensors, key: string, update: tf.Tensor, what: string): tf.Tensor {
  const buffer = buffers[key];
  if (buffer === undefined) {
    throw new TapfitError(
      ErrorCodes.STATE,
      `${what}: nothing for parameter '${key}' (have: ${Object.keys(buffers).join(', ') || 'none'}). ` +
        'Initialise the transform with every parameter that receives updates.',
    );
  }
  if (buffer.shape.length !== update.shape.length || buffer.shape.some((d, i) => d !== update.shape[i])) {
    throw new TapfitError(
      ErrorCodes.SHAPE,
      `${what}: parameter '${key}' has shape [${buffer.shape}] but its update has shape [${update.shape}].`,
    );
  }
  return buffer;
}

/**
 * The new buffers of a step: `updated` (for the parameters that got an update) plus the
 * buffers of `previous` for those that got none this step (a variable not connected to the
 * loss, a gradient a backward tap withheld). Those keep their state, as tf.train's
 * optimizers skip a null gradient; dropping them would make the next update for them fail
 * and a checkpoint saved meanwhile not match init. The kept tensors pass through by
 * identity, so disposeState leaves them alone.
 */
export function withUnchangedBuffers(previous: NamedTensors, updated: NamedTensors): NamedTensors {
  return { ...previous, ...updated };
}
