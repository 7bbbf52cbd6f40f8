import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { callKernel, composite, kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';

/**
 * AddN of many tensors on webgpu. tfjs-backend-webgpu 4.22 binds every input and the
 * output as storage buffers of one shader, so more inputs than the device's
 * maxStorageBuffersPerShaderStage - 1 (7 on a default device) is work the GPU rejects
 * (tf.addN of 9 tensors; its Concat splits, AddN does not). Here they are summed in
 * groups that fit, then the groups' sums: the same float32 sums in another grouping.
 */
export function installAddNGroups(o: Overrides): void {
  const addN = tf.getKernel('AddN', 'webgpu');
  if (!addN) throw new TapfitError(ErrorCodes.BACKEND, "webgpu shim: kernel 'AddN' is not registered for webgpu. Install @tensorflow/tfjs-backend-webgpu 4.22 (the version of @tensorflow/tfjs).");
  o.kernel(kernelConfig('AddN', 'webgpu', (args) => {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const limits = (args.backend as unknown as { device?: { limits?: { maxStorageBuffersPerShaderStage?: number } } }).device?.limits;
    const most = Math.max(2, (limits?.maxStorageBuffersPerShaderStage ?? 8) - 1);
    if (inputs.length <= most) return callKernel(addN, args);
    return composite(args.backend, 'webgpu', (k) => {
      let terms = inputs;
      while (terms.length > most) {
        const sums: tf.TensorInfo[] = [];
        for (let i = 0; i < terms.length; i += most) {
          const group = terms.slice(i, i + most);
          sums.push(group.length === 1 ? group[0] : k.track(callKernel(addN, { ...args, inputs: group as unknown as Record<string, tf.TensorInfo> })));
        }
        terms = sums;
      }
      return callKernel(addN, { ...args, inputs: terms as unknown as Record<string, tf.TensorInfo> });
    });
  }));
}
