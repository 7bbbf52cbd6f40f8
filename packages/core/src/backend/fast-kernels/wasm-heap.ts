import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { KERNELS_WASM, KERNELS_WASM_SHARED } from './kernels-binary';
import { KernelThreads } from './kernel-threads';

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
  dispose(): void;
  incRef(dataId: tf.DataId): void;
  wasm: {
    wasmMemory?: WasmMemory;
    asm?: { memory?: WasmMemory };
    _malloc(bytes: number): number;
    tfjs?: { getThreadsCount?(): number };
  };
}

/** The exports of kernels/index.ts (pointers are byte offsets into the tfjs heap). */
export interface HeapKernels {
  permute(out: number, src: number, meta: number): void;
  axpby(out: number, x: number, y: number, a: number, b: number, n: number): void;
  adam(muOut: number, nuOut: number, dirOut: number, g: number, mu: number, nu: number, b1: number, c1: number, b2: number, c2: number, s1: number, s2: number, eps: number, n: number): void;
  sumRows(out: number, src: number, rows: number, cols: number): void;
  gemm(c: number, a: number, b: number, M: number, K: number, N: number, scratch: number): void;
  gemmNT(c: number, a: number, b: number, M: number, K: number, N: number): void;
  im2colT(out: number, x: number, B: number, H: number, W: number, CI: number, OH: number, OW: number, KW: number, sh: number, sw: number, top: number, left: number, t0: number, t1: number): void;
  add(out: number, x: number, y: number, n: number): void;
  addRows(out: number, x: number, bias: number, cols: number, r0: number, r1: number): void;
  reluGrad(out: number, dy: number, x: number, n: number): void;
  relu(out: number, x: number, n: number): void;
  clamp(out: number, x: number, lo: number, hi: number, n: number): void;
  hasNegativeInfinity(x: number, n: number): number;
  scale(out: number, x: number, s: number, n: number): void;
  maxPoolGradTiled(dx: number, x: number, dy: number, B: number, H: number, W: number, C: number, OH: number, OW: number, KH: number, KW: number, top: number, left: number, b0: number, b1: number): void;
}

/** Scratch of one `gemm` call: a packed 256 x 256 block of its right operand and a 4 x 8 tile (kernels/gemm.ts). */
const GEMM_SCRATCH_BYTES = 256 * 256 * 4 + 4 * 8 * 4;

/** Kernels the helper threads may run (the others always run on the main thread). */
const SPLIT_KERNELS: ReadonlyArray<keyof HeapKernels> = ['gemm', 'add', 'scale', 'axpby', 'adam', 'im2colT', 'addRows', 'reluGrad', 'relu', 'clamp', 'maxPoolGradTiled'];

export interface WasmHeap {
  kernels: HeapKernels;
  /** 64 i32 words of scratch on the heap for kernel set-up (the permutation's `meta`). */
  meta: number;
  /**
   * How many parts a call can be split into now: 1 + the ready helper threads of the
   * multi-threaded backend (kernel-threads.ts); 1 with one thread.
   */
  parts(): number;
  /**
   * Runs a kernel once per argument list (parts with disjoint outputs), the lists spread
   * over the threads. When it throws (a helper failed), the kernel rollback frees the
   * outputs the caller made.
   */
  run<K extends keyof HeapKernels>(name: K, argLists: Array<Parameters<HeapKernels[K]>>): void;
  /** The helper threads, null without (one thread, or they could not start). */
  threads: KernelThreads | null;
  /** Per part (thread), GEMM_SCRATCH_BYTES of heap for `gemm`'s packed block. */
  gemmScratch: number[];
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
  // Heap offsets are unsigned: emscripten's malloc returns them as signed i32, negative above 2 GiB.
  const meta = b.wasm._malloc(64 * 4) >>> 0;
  const threads = shared ? startHelpers(b, module, memory) : null;
  const heap: WasmHeap = {
    kernels,
    meta,
    threads,
    gemmScratch: Array.from({ length: 1 + (threads?.size ?? 0) }, () => b.wasm._malloc(GEMM_SCRATCH_BYTES) >>> 0),
    parts: () => (threads ? threads.parts() : 1),
    run: (name, argLists) => {
      // heap.kernels, read at the call: tests wrap it to count calls.
      const main = heap.kernels as unknown as Record<string, (...args: number[]) => void>;
      if (threads && argLists.length > 1) threads.run(main, name, argLists as number[][]);
      else for (const args of argLists) main[name](...(args as number[]));
    },
    words: () => new Int32Array(memory.buffer),
    offset: (t) => {
      const at = b.dataIdMap.get(t.dataId)?.memoryOffset;
      if (at == null) throw new TapfitError(ErrorCodes.BACKEND, `wasm fast kernels: a ${t.dtype} tensor [${t.shape}] has no data on the wasm heap; uninstallWasmFastKernels() runs this op with the stock kernel`);
      return at;
    },
    output: (shape, dtype = 'float32') => b.makeOutput(shape, dtype),
    backend: b as unknown as tf.KernelBackend,
  };
  return heap;
}

/**
 * (threads - 1) helpers for the multi-threaded backend, stopped with the backend; null
 * when there is one thread or they cannot start (the kernels then run on the main thread).
 */
function startHelpers(b: BackendWasmInternals, module: object, memory: WasmMemory): KernelThreads | null {
  const count = (b.wasm.tfjs?.getThreadsCount?.() ?? 1) - 1;
  if (count < 1) return null;
  let threads: KernelThreads;
  try {
    threads = new KernelThreads(module, memory, count, SPLIT_KERNELS);
  } catch {
    return null;
  }
  const dispose = b.dispose.bind(b);
  b.dispose = () => {
    threads.stop();
    dispose();
  };
  return threads;
}

/**
 * A tensor's data on the heap, viewed for kernels that move values without computing
 * with them: 32-bit words for float32 and int32 (bit for bit: no float conversion, NaN
 * payloads kept), bytes for bool. Made after any allocation, which may grow the heap.
 */
/** Dtypes `elementsOf` can view: the copy kernels take these and leave the rest to the stock kernel. */
export const isMovable = (dtype: tf.DataType): boolean => dtype === 'float32' || dtype === 'int32' || dtype === 'bool';

export function elementsOf(heap: WasmHeap, t: tf.TensorInfo): Int32Array | Uint8Array {
  const n = tf.util.sizeFromShape(t.shape);
  const at = heap.offset(t);
  // `>>> 2`: offsets at 2 GiB and above have the top bit set, which `>> 2` would make negative.
  return t.dtype === 'bool' ? new Uint8Array(heap.words().buffer, at, n) : heap.words().subarray(at >>> 2, (at >>> 2) + n);
}
