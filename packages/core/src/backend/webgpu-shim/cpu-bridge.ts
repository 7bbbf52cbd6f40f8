import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { runOnCpu } from '../wasm-shim/cpu-bridge';
import { callKernel, kernelConfig } from '../wasm-shim/kernel-calls';
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

/**
 * Kernels webgpu has but gets wrong for int32 values, which run on cpu then: its
 * UnsortedSegmentSum sums int32 in float32 and stores the float's bits (8 read back as
 * -2132803584; found by running the dtype sweep on webgpu, 2026-11-30).
 */
export const WEBGPU_WRONG_FOR_INT32 = ['UnsortedSegmentSum'] as const;

/**
 * Kernels webgpu gets wrong whatever the dtype, run on cpu (found by a sweep of image ops
 * against float64 references, 2026-11-30; values in [0, 200]): Transform
 * (tf.image.transform) read the wrong pixels with nearest interpolation and for every image
 * after the first (148 and 180 off); CropAndResize read the wrong image for some box
 * indices ([1] or [0, 2] of a batch of three: 178 off; [1, 0] and [2, 0, 1] were right).
 */
export const WEBGPU_WRONG = ['Transform', 'CropAndResize'] as const;

export function installWebgpuCpuBridge(o: Overrides): void {
  for (const name of WEBGPU_WRONG) {
    const cpuKernel = tf.getKernel(name, 'cpu');
    if (!cpuKernel) throw new TapfitError(ErrorCodes.BACKEND, `webgpu shim: cpu kernel '${name}' is not registered, so webgpu cannot borrow it. Import '@tensorflow/tfjs' (the union package, which registers the cpu backend), version 4.22.`);
    o.kernel(kernelConfig(name, 'webgpu', (args) => runOnCpu(cpuKernel, args)));
  }
  for (const name of WEBGPU_WRONG_FOR_INT32) {
    const [gpuKernel, cpuKernel] = [tf.getKernel(name, 'webgpu'), tf.getKernel(name, 'cpu')];
    if (!gpuKernel || !cpuKernel) throw new TapfitError(ErrorCodes.BACKEND, `webgpu shim: kernel '${name}' is not registered for both cpu and webgpu, so the shim cannot route it. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-webgpu 4.22 (the same version).`);
    o.kernel(kernelConfig(name, 'webgpu', (args) => (args.inputs.x.dtype === 'int32' ? runOnCpu(cpuKernel, args) : callKernel(gpuKernel, args))));
  }
  for (const name of WEBGPU_BRIDGED_TO_CPU) {
    if (tf.getKernel(name, 'webgpu')) continue; // a later tfjs-backend-webgpu has its own
    const cpuKernel = tf.getKernel(name, 'cpu');
    if (!cpuKernel) throw new TapfitError(ErrorCodes.BACKEND, `webgpu shim: cpu kernel '${name}' is not registered, so webgpu cannot borrow it. Import '@tensorflow/tfjs' (the union package, which registers the cpu backend), version 4.22.`);
    o.kernel(kernelConfig(name, 'webgpu', (args) => runOnCpu(cpuKernel, args)));
  }
}
