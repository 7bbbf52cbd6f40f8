import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { KERNELS_WASM, KERNELS_WASM_SHARED } from './kernels-binary';

/** The WebAssembly API of Node (ES2022's lib, which the build uses, does not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
}
const WasmApi = (globalThis as unknown as {
  WebAssembly: {
    Memory: new (descriptor: { initial: number }) => WasmMemory;
    Module: new (bytes: Uint8Array) => object;
    Instance: new (module: object, imports: object) => { exports: unknown };
  };
}).WebAssembly;

/**
 * The parts of tfjs-backend-wasm 4.22's backend object that tapfit's own kernels use
 * (not exported API): the tensor table with each tensor's heap offset, the emscripten
 * module with its heap and allocator. `heapFor` checks them and leaves the kernels off
 * (falling back to the kernels they replace) when they are missing.
 */
interface BackendWasmInternals {
  dataIdMap: { get(dataId: tf.DataId): { memoryOffset: number | null; refCount: number } | undefined };
  makeOutput(shape: number[], dtype: tf.DataType): tf.TensorInfo;
  incRef(dataId: tf.DataId): void;
  wasm: {
    wasmMemory?: WasmMemory;
    asm?: { memory?: WasmMemory };
    _malloc(bytes: number): number;
  };
}

/** The exports of kernels/index.ts (pointers are byte offsets into the tfjs heap). */
export interface HeapKernels {
  permute(out: number, src: number, meta: number): void;
  axpby(out: number, x: number, y: number, a: number, b: number, n: number): void;
  adam(muOut: number, nuOut: number, dirOut: number, g: number, mu: number, nu: number, b1: number, c1: number, b2: number, c2: number, s1: number, s2: number, eps: number, n: number): void;
  sumRows(out: number, src: number, rows: number, cols: number): void;
  gemm(c: number, a: number, b: number, M: number, K: number, N: number): void;
  gemmNT(c: number, a: number, b: number, M: number, K: number, N: number): void;
  convFilterGrad(dw: number, x: number, dy: number, B: number, H: number, W: number, CI: number, OH: number, OW: number, CO: number, KH: number, KW: number, sh: number, sw: number, top: number, left: number): void;
  maxPoolGradTiled(dx: number, x: number, dy: number, B: number, H: number, W: number, C: number, OH: number, OW: number, KH: number, KW: number, top: number, left: number): void;
}

export interface WasmHeap {
  kernels: HeapKernels;
  /** 64 i32 words of scratch on the heap for kernel set-up (the permutation's `meta`). */
  meta: number;
  /** The heap as i32 words (re-read: the heap may have grown since). */
  words(): Int32Array;
  /** Byte offset of a tensor's data. */
  offset(t: tf.TensorInfo): number;
  /** A new output tensor's info, allocated on the heap. */
  output(shape: number[], dtype?: tf.DataType): tf.TensorInfo;
  backend: tf.KernelBackend;
}

const heaps = new WeakMap<object, WasmHeap | null>();

/**
 * tapfit's kernel module instantiated on the wasm backend's own memory (the shared one
 * of the multi-threaded build, or the plain one), once per backend; null when this
 * tfjs-backend-wasm does not expose what the kernels need (then they stay off).
 */
export function heapFor(backend: tf.KernelBackend): WasmHeap | null {
  const known = heaps.get(backend);
  if (known !== undefined) return known;
  const heap = instantiate(backend as unknown as BackendWasmInternals);
  heaps.set(backend, heap);
  return heap;
}

function instantiate(b: BackendWasmInternals): WasmHeap | null {
  const memory = b?.wasm?.wasmMemory ?? b?.wasm?.asm?.memory;
  if (!(memory instanceof WasmApi.Memory) || typeof b.wasm._malloc !== 'function' || typeof b.dataIdMap?.get !== 'function' || typeof b.makeOutput !== 'function') return null;
  const shared = typeof SharedArrayBuffer !== 'undefined' && memory.buffer instanceof SharedArrayBuffer;
  const module = new WasmApi.Module(Buffer.from(shared ? KERNELS_WASM_SHARED : KERNELS_WASM, 'base64'));
  const kernels = new WasmApi.Instance(module, { env: { memory } }).exports as unknown as HeapKernels;
  const meta = b.wasm._malloc(64 * 4);
  return {
    kernels,
    meta,
    words: () => new Int32Array(memory.buffer),
    offset: (t) => {
      const at = b.dataIdMap.get(t.dataId)?.memoryOffset;
      if (at == null) throw new TapfitError(ErrorCodes.BACKEND, `wasm fast kernels: a ${t.dtype} tensor [${t.shape}] has no data on the wasm heap; uninstallWasmFastKernels() runs this op with the stock kernel`);
      return at;
    },
    output: (shape, dtype = 'float32') => b.makeOutput(shape, dtype),
    backend: b as unknown as tf.KernelBackend,
  };
}
