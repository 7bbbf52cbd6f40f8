import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { runOnCpu } from '../wasm-shim/cpu-bridge';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import { Overrides } from '../wasm-shim/overrides';

/**
 * Kernels the cpu backend has and tfjs-backend-webgpu 4.22 lacks (none is on
 * a training path: string, sparse and ragged ops, Unique, non-max suppression
 * v4, bitwise and). They run on cpu: the inputs are read back from the GPU (or
 * the host copy webgpu keeps for strings), the cpu kernel runs, and the outputs
 * are written to webgpu.
 */
export const WEBGPU_BRIDGED_TO_CPU = [
  'BitwiseAnd', 'NonMaxSuppressionV4', 'RaggedGather', 'RaggedRange', 'RaggedTensorToTensor', 'SparseFillEmptyRows',
  'SparseReshape', 'StaticRegexReplace', 'StringSplit', 'StringToHashBucketFast', 'Unique',
] as const;

export function installWebgpuCpuBridge(o: Overrides): void {
  for (const name of WEBGPU_BRIDGED_TO_CPU) {
    if (tf.getKernel(name, 'webgpu')) continue; // a later tfjs-backend-webgpu has its own
    const cpuKernel = tf.getKernel(name, 'cpu');
    if (!cpuKernel) throw new TapfitError(ErrorCodes.BACKEND, `webgpu shim: cpu kernel '${name}' is not registered, so webgpu cannot borrow it. Import '@tensorflow/tfjs' (the union package, which registers the cpu backend), version 4.22.`);
    o.kernel(kernelConfig(name, 'webgpu', (args) => runOnCpu(cpuKernel, args)));
  }
}
