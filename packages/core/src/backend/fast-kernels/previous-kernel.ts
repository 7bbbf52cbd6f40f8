import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { callKernel, type KernelImpl } from '../wasm-shim/kernel-calls';

/**
 * The wasm kernel registered before a fast kernel replaces it (the training shim's or
 * tfjs's own), to run where the fast kernel does not apply (another dtype or layout).
 */
export function previousKernel(name: string): KernelImpl {
  const kernel = tf.getKernel(name, 'wasm');
  if (!kernel) throw new TapfitError(ErrorCodes.BACKEND, `wasm fast kernels: wasm kernel '${name}' is not registered, so its fast version cannot be installed. Install @tensorflow/tfjs-backend-wasm 4.22 (the same version as @tensorflow/tfjs).`);
  return (args) => callKernel(kernel, args);
}
