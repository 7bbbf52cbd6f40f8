import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { callKernel, kernelConfig } from './kernel-calls';
import type { Overrides } from './overrides';

/**
 * Negative axes for Cumsum and Cumprod. tfjs 4.22 passes `axis` to the kernels as given,
 * and they index the shape with it: tf.cumsum(x, -1) of a [2, 3, 4] tensor came out with
 * the shape [undefined, 2, 3] and no values on cpu, and threw on wasm. The axis is counted
 * from the end here, as everywhere else in tfjs, and one out of range is a clear error.
 */
export function installCumulativeAxis(o: Overrides, backends: readonly string[]): void {
  for (const backendName of backends) {
    for (const kernelName of ['Cumsum', 'Cumprod']) {
      const previous = tf.getKernel(kernelName, backendName);
      if (!previous) continue;
      o.kernel(kernelConfig(kernelName, backendName, (args) => {
        const rank = args.inputs.x.shape.length;
        const axis = args.attrs.axis as number;
        if (!Number.isInteger(axis) || axis < -rank || axis >= rank) {
          throw new TapfitError(ErrorCodes.SHAPE, `${kernelName.toLowerCase()}: axis ${axis} is out of range for a rank-${rank} tensor [${args.inputs.x.shape}]; use an axis from ${-rank} to ${rank - 1}`);
        }
        return callKernel(previous, axis < 0 ? { ...args, attrs: { ...args.attrs, axis: axis + rank } } : args);
      }));
    }
  }
}
