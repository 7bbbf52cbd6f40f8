import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { callKernel, composite, kernelConfig } from './kernel-calls';
import type { Overrides } from './overrides';

/**
 * FusedBatchNorm with statistics shaped to broadcast ([1, C, 1, 1] against [B, C, H, W]:
 * what tfjs-layers' BatchNormalization passes for any axis but the last, channels first
 * included, in training and in inference). tfjs 4.22's cpu and wasm kernels walk the
 * statistics as if they repeated along the last axis, so every value was wrong (1.26 off
 * on a [2, 3, 4, 4] input), silently (webgpu's kernel is right). Such calls run as
 * (x - mean) rsqrt(variance + eps) scale + offset from the backend's broadcasting
 * kernels; vector statistics keep the fused kernel. Found by running the layers sweep on
 * webgpu, whose numbers disagreed with cpu's (cpu's were the wrong ones).
 */
export function installBatchNormBroadcast(o: Overrides, backends: readonly string[]): void {
  for (const backendName of backends) {
    const fused = tf.getKernel('FusedBatchNorm', backendName);
    if (!fused) throw new TapfitError(ErrorCodes.BACKEND, `kernel 'FusedBatchNorm' is not registered for ${backendName}. Install @tensorflow/tfjs and its backends 4.22 (the same version).`);
    o.kernel(kernelConfig('FusedBatchNorm', backendName, (args) => {
      const { x, mean, variance, offset, scale } = args.inputs;
      if ([mean, variance, offset, scale].every((t) => t == null || t.shape.length <= 1)) return callKernel(fused, args);
      const epsilon = (args.attrs.varianceEpsilon as number | undefined) ?? 0.001;
      return composite(args.backend, backendName, (k) => {
        const r = k.run('Rsqrt', { x: k.run('Add', { a: variance, b: k.scalar(epsilon) }) });
        let y = k.run('Multiply', { a: k.run('Sub', { a: x, b: mean }), b: r });
        if (scale) y = k.run('Multiply', { a: y, b: scale });
        return offset ? k.run('Add', { a: y, b: offset }) : y;
      });
    }));
  }
}
