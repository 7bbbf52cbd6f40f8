import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { runOnCpu } from './cpu-bridge';
import { callKernel, kernelConfig } from './kernel-calls';
import type { Overrides } from './overrides';
import { stridedSliceInfo, type StridedSliceAttrs } from './strided-slice-shrink';

type Args = Parameters<typeof runOnCpu>[1];

/**
 * Stock wasm kernels that are right on float32 and wrong on other dtypes (found by running
 * ops on int32 and bool tensors against cpu; docs/backends.md §2). Those calls run on cpu
 * through the bridge; float32 calls, and plain slices, stay on wasm.
 */
const ROUTES: Record<string, (args: Args) => boolean> = {
  // A strided slice (not a plain one, which tfjs routes to Slice) labels its result float32
  // whatever the input: an int32 7 reads as 9.8e-45, a bool tensor is read as 4-byte values.
  StridedSlice: ({ inputs, attrs }) => inputs.x.dtype !== 'float32' && !plainSlice(inputs.x.shape, attrs),
  // tf.where with bool branches: read as 4-byte values.
  Select: ({ inputs }) => inputs.t.dtype === 'bool',
  // clipByValue on int32 clips the bits as float32 (-2 came back as -1073741824).
  ClipByValue: ({ inputs }) => inputs.x.dtype !== 'float32',
};

/** Kernels with dtypes routed to cpu. */
export const WRONG_FOR_SOME_DTYPES = Object.keys(ROUTES);

export function installDtypeRoutes(o: Overrides): void {
  for (const [name, toCpu] of Object.entries(ROUTES)) {
    const cpuKernel = tf.getKernel(name, 'cpu');
    const wasmKernel = tf.getKernel(name, 'wasm');
    if (!cpuKernel || !wasmKernel) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${name}' is not registered for both cpu and wasm, so the shim cannot route it. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22 (the same version).`);
    o.kernel(kernelConfig(name, 'wasm', (args) => (toCpu(args) ? runOnCpu(cpuKernel, args) : callKernel(wasmKernel, args))));
  }
}

/** Whether tfjs-backend-wasm runs this StridedSlice as Slice and Reshape (dtype kept) rather than its strided kernel. */
function plainSlice(shape: number[], attrs: Args['attrs']): boolean {
  const info = stridedSliceInfo(shape, attrs as unknown as StridedSliceAttrs);
  return info.isIdentity || info.sliceDim0 || info.isSimpleSlice;
}
