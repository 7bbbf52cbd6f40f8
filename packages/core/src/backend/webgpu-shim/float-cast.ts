import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { callKernel, composite, kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';

/**
 * bool and int32 cast to float32 on webgpu. tfjs-backend-webgpu 4.22 casts them without
 * converting: the float32 tensor shares the integer buffer. Most shaders convert what they
 * read, but the transpose of rank 3 and more assigns the element as it reads it, so its
 * WGSL did not compile ("expected 'f32', got 'i32'") and every result after it was wrong:
 * a Masking or mask-zero Embedding layer before an RNN (the mask cast to float32 and
 * transposed to time-major) could not run. The cast here writes float32 values (the
 * shared view times 1, which the element-wise shaders convert).
 */
export function installFloatCast(o: Overrides): void {
  const cast = tf.getKernel('Cast', 'webgpu');
  const multiply = tf.getKernel('Multiply', 'webgpu');
  if (!cast || !multiply) throw new TapfitError(ErrorCodes.BACKEND, "webgpu shim: kernels 'Cast' and 'Multiply' are not registered for webgpu. Install @tensorflow/tfjs-backend-webgpu 4.22 (the version of @tensorflow/tfjs).");
  o.kernel(kernelConfig('Cast', 'webgpu', (args) => {
    const { x } = args.inputs;
    if (args.attrs.dtype !== 'float32' || (x.dtype !== 'bool' && x.dtype !== 'int32')) return callKernel(cast, args);
    return composite(args.backend, 'webgpu', (k) => {
      const shared = k.track(callKernel(cast, args));
      return callKernel(multiply, { ...args, inputs: { a: shared, b: k.scalar(1) }, attrs: {} });
    });
  }));
}
