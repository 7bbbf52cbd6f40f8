import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { KernelImpl, kernelConfig } from './kernel-calls';
import { Overrides } from './overrides';

/**
 * Kernels wasm lacks or computes wrongly, run by the cpu backend: inputs are
 * copied out of the wasm heap, the cpu kernel runs, outputs are copied back.
 * Correct but slow (a copy each way plus the cpu kernel's speed); used only
 * where no fast composite exists.
 */
export const BRIDGED_TO_CPU = {
  /** Missing on wasm: the gradient of gather/embedding lookups needs it. */
  missing: ['UnsortedSegmentSum', 'Einsum', 'RaggedGather', 'RaggedRange', 'RaggedTensorToTensor', 'StaticRegexReplace'],
  /** Present on wasm but wrong (docs/backends.md §2): conv3d dx off by ~80 %, dilation2d forward already wrong. */
  wrong: ['Conv3DBackpropInputV2', 'Dilation2D', 'Dilation2DBackpropInput', 'Dilation2DBackpropFilter'],
  /** wasm's conv3d dW is right for stride 1 only; strided calls go to cpu. */
  wrongWhenStrided: ['Conv3DBackpropFilterV2'],
} as const;

/**
 * cpu-only kernels that cannot be bridged: wasm has no complex64 storage, and
 * Draw paints onto a browser canvas. The missing-kernel error explains them.
 */
export const NOT_BRIDGED: Record<string, string> = {
  Complex: 'wasm cannot store complex64 tensors',
  ComplexAbs: 'wasm cannot store complex64 tensors',
  Real: 'wasm cannot store complex64 tensors',
  Imag: 'wasm cannot store complex64 tensors',
  FFT: 'wasm cannot store complex64 tensors',
  IFFT: 'wasm cannot store complex64 tensors',
  Draw: 'Draw paints onto a browser canvas',
};

export function installCpuBridge(o: Overrides): void {
  for (const name of [...BRIDGED_TO_CPU.missing, ...BRIDGED_TO_CPU.wrong]) {
    const cpuKernel = tf.getKernel(name, 'cpu');
    if (!cpuKernel) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: cpu kernel '${name}' is not registered, so wasm cannot borrow it. Import '@tensorflow/tfjs' (the union package, which registers the cpu backend), version 4.22.`);
    o.kernel(kernelConfig(name, 'wasm', (args) => runOnCpu(cpuKernel, args)));
  }
  for (const name of BRIDGED_TO_CPU.wrongWhenStrided) {
    const cpuKernel = tf.getKernel(name, 'cpu');
    const wasmKernel = tf.getKernel(name, 'wasm');
    if (!cpuKernel || !wasmKernel) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${name}' is not registered for both cpu and wasm, so the shim cannot route it. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22 (the same version).`);
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      const strides = ([] as number[]).concat(args.attrs.strides as number | number[]);
      if (strides.every((s) => s === 1)) return wasmKernel.kernelFunc({ ...args, attrs: args.attrs as tf.NamedAttrMap }) as tf.TensorInfo;
      return runOnCpu(cpuKernel, args);
    }));
  }
}

export function runOnCpu(kernel: tf.KernelConfig, { inputs, attrs, backend }: Parameters<KernelImpl>[0]): tf.TensorInfo | tf.TensorInfo[] {
  const cpu = tf.findBackend('cpu');
  if (!cpu) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${kernel.kernelName}' runs on the cpu backend for wasm, but no cpu backend is registered. Import '@tensorflow/tfjs' (the union package), which registers it, or run this op on selectBackend('cpu').`);
  // Inputs are a name map, or an array for variadic kernels (Einsum); keep the form.
  const onCpu: Record<string, tf.TensorInfo> | tf.TensorInfo[] = Array.isArray(inputs) ? [] : {};
  const copies: tf.DataId[] = [];
  try {
    for (const [name, t] of Object.entries(inputs as Record<string, tf.TensorInfo | null | undefined>)) {
      if (t == null) continue;
      const dataId = cpu.write(backend.readSync(t.dataId) as tf.backend_util.BackendValues, t.shape, t.dtype);
      copies.push(dataId);
      // Some cpu kernels read `rank`, which tensors have and bare TensorInfos lack.
      (onCpu as Record<string, tf.TensorInfo>)[name] = { dataId, shape: t.shape, dtype: t.dtype, rank: t.shape.length } as tf.TensorInfo;
    }
    const out = kernel.kernelFunc({ inputs: onCpu as tf.NamedTensorInfoMap, attrs: attrs as tf.NamedAttrMap, backend: cpu }) as tf.TensorInfo | tf.TensorInfo[];
    const outs = Array.isArray(out) ? out : [out];
    copies.push(...outs.map((t) => t.dataId));
    const back: tf.TensorInfo[] = [];
    try {
      for (const t of outs) back.push({ dataId: backend.write(cpu.readSync(t.dataId), t.shape, t.dtype), shape: t.shape, dtype: t.dtype });
    } catch (err) {
      for (const t of back) backend.disposeData(t.dataId);
      throw err;
    }
    return Array.isArray(out) ? back : back[0];
  } finally {
    for (const id of copies) cpu.disposeData(id, true);
  }
}
