import * as tf from '@tensorflow/tfjs';
import { composite, kernelConfig, type KernelImpl, type Scratch } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { partRange } from './kernel-threads';
import { previousKernel } from './previous-kernel';
import { heapFor, type WasmHeap } from './wasm-heap';

/**
 * Products of fewer rows than this read W as it lies, on one thread (see below; with more
 * threads dy W^T only for one row, beyond which XNNPACK's threaded product catches up).
 * Measured by `npm run bench -- kernels [--threads=2]` (README, Fast kernels).
 */
const FEW_ROWS = 8;

/**
 * Multiply-adds from which tapfit's product is split over the helper threads (smaller
 * ones run on the main thread: waking a helper costs about 10 us).
 */
const MIN_SPLIT_MACS = 2 ** 18;

/** Rows per part of a split product: multiples of the kernel's 4-row tile. */
const SPLIT_ALIGN = 4;

/** Columns of dy from which x^T dy goes through tapfit's product (narrower: the packing route). */
const OWN_TRANSPOSE_A_MIN_COLUMNS = 64;

/**
 * Batch from which x^T dy goes through tapfit's product: below, it is an outer product
 * of a row or two, and XNNPACK packs only the small dy (measured at batch 1, XNNPACK
 * against tapfit's product: [2048,2048] 1.40 against 1.93 ms; [1568,128] 82 against 77
 * us, a tie).
 */
const OWN_TRANSPOSE_A_MIN_BATCH = 4;

/**
 * The products of training (dense forward x W, weight gradient x^T dy, input gradient
 * dy W^T), without XNNPACK's repacking where that pays.
 *
 * XNNPACK's product (tfjs-backend-wasm's only fast one) packs its right operand,
 * transposing it, on every call: the weights change every step, so nothing is cached,
 * and packing a 2048 x 2048 operand cost a third of the product's time.
 *
 * - A batch of fewer than 8 rows: W read as it lies, on one thread, with any thread
 *   count: x W through tapfit's product, dy W^T through its row product (which
 *   transposes four rows of W at a time in registers; with more threads only for one
 *   row). The other routes transpose or pack all of W for a handful of rows.
 * - With one thread and a product of up to 2^26 multiply-adds, tapfit's own SIMD
 *   product (kernels/gemm.ts) reads both operands as they lie: no packing, no transpose.
 *   dy W^T is computed as (W dy^T)^T, with two small transposes (of the batch-sized
 *   operands); x^T dy as (x^T) dy, one transpose of x, when dy has 64 columns or more.
 * - With more threads (tapfit's kernels run on the main thread only), XNNPACK's threaded
 *   product in the cheaper order: C = A B can also be computed as (B^T A^T)^T, which
 *   packs A^T instead, several times less data when the batch is smaller than the layer
 *   widths, for three fast transposes.
 *
 * Every route does the same multiply-adds in the same order with the same float32
 * rounding (mul, then add, from zero), so the values are the same as XNNPACK's.
 */
export function installMatMulOrder(o: Overrides): void {
  for (const kernelName of ['BatchMatMul', '_FusedMatMul']) {
    const previous = previousKernel(kernelName);
    o.kernel(kernelConfig(kernelName, 'wasm', (args) => {
      const { a, b } = args.inputs;
      const attrs = args.attrs as { transposeA: boolean; transposeB: boolean; activation?: string };
      const plain = !args.inputs.bias && !args.inputs.preluActivationWeights && (attrs.activation ?? 'linear') === 'linear';
      const heap = heapFor(args.backend);
      if (!heap || !plain || !single(a) || !single(b) || a.dtype !== 'float32' || b.dtype !== 'float32' || (attrs.transposeA && attrs.transposeB)) return previous(args);
      const [M, K] = attrs.transposeA ? a.shape.slice(-2).reverse() : a.shape.slice(-2);
      const N = attrs.transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
      if (M === 0 || K === 0 || N === 0) return previous(args);
      const outShape = [...(a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2), M, N];
      if (M < FEW_ROWS && attrs.transposeB) return gemmInto(heap, a, b, M, K, N, outShape, 'rows');
      if (M < FEW_ROWS && !attrs.transposeA) return gemmInto(heap, a, b, M, K, N, outShape, 'inPlace');
      if (attrs.transposeA) {
        // x^T dy: x transposed, then the product; for a narrow dy the shim's route (x
        // transposed, dy packed by XNNPACK) is cheaper (measured, one thread:
        // [128,512]^T [128,10] 0.17 against 0.24 ms), and for a batch of 1-3 rows too.
        if (N < OWN_TRANSPOSE_A_MIN_COLUMNS || K < OWN_TRANSPOSE_A_MIN_BATCH) return previous(args);
        return composite(args.backend, 'wasm', (k) => {
          const aT = k.run('Transpose', { x: k.reshape(a, [K, M]) }, { perm: [1, 0] });
          return gemmInto(heap, aT, b, M, K, N, outShape);
        });
      }
      return ownProduct(heap, kernelName, args, M, K, N, outShape);
    }));
  }
}

/** tapfit's product: A B directly, A B^T as (B A^T)^T. */
function ownProduct(heap: WasmHeap, kernelName: string, args: Parameters<KernelImpl>[0], M: number, K: number, N: number, outShape: number[]): tf.TensorInfo {
  const { a, b } = args.inputs;
  const { transposeB } = args.attrs as { transposeB: boolean };
  if (!transposeB) {
    return gemmInto(heap, a, b, M, K, N, outShape);
  }
  return composite(args.backend, 'wasm', (k) => {
    const aT = k.run('Transpose', { x: k.reshape(a, [M, K]) }, { perm: [1, 0] });
    const productT = productOf(k, kernelName, args.attrs, k.reshape(b, [N, K]), aT, N, K, M);
    return k.reshape(k.run('Transpose', { x: productT }, { perm: [1, 0] }), outShape);
  });
}

/**
 * The plain product x [rows, depth] y [depth, cols] through the kernel again, as [rows, cols].
 * Product kernels take rank-3 operands (tfjs's ops reshape to [batch, rows, cols] before
 * calling them; the stock _FusedMatMul reads the shapes as rank 3), so the operands go in
 * with a batch of 1.
 */
function productOf(k: Scratch, kernelName: string, attrs: object, x: tf.TensorInfo, y: tf.TensorInfo, rows: number, depth: number, cols: number): tf.TensorInfo {
  const product = k.run(kernelName, { a: k.reshape(x, [1, rows, depth]), b: k.reshape(y, [1, depth, cols]) }, { ...attrs, transposeA: false, transposeB: false });
  return k.reshape(product, [rows, cols]);
}

/**
 * x [M, K] y [K, N] by tapfit's product into a new tensor of `outShape` (M N elements):
 * 'packed' (blocks of y copied, split over the threads), 'inPlace' (y read as it lies,
 * one thread: a few rows), 'rows' (x y^T for y given as [N, K]: the row product).
 */
function gemmInto(heap: WasmHeap, x: tf.TensorInfo, y: tf.TensorInfo, M: number, K: number, N: number, outShape: number[], route: 'packed' | 'inPlace' | 'rows' = 'packed'): tf.TensorInfo {
  const out = heap.output(outShape);
  const [c, a, b] = [heap.offset(out), heap.offset(x), heap.offset(y)];
  if (route === 'rows') heap.kernels.gemmNT(c, a, b, M, K, N);
  else if (route === 'inPlace') heap.kernels.gemm(c, a, b, M, K, N, 0);
  else {
    const parts = M * K * N >= MIN_SPLIT_MACS ? Math.max(1, Math.min(heap.parts(), Math.floor(M / SPLIT_ALIGN))) : 1;
    // Rows of x (and of the product) in parts, each a product of its own on one thread:
    // every output element is summed exactly as in the whole product.
    heap.run('gemm', Array.from({ length: parts }, (_, part) => {
      const [from, to] = partRange(M, part, parts, SPLIT_ALIGN);
      return [c + from * N * 4, a + from * K * 4, b, to - from, K, N, heap.gemmScratch[part]] as [number, number, number, number, number, number, number];
    }));
  }
  return out;
}

/** No batch: every leading dimension is 1. */
function single(t: tf.TensorInfo): boolean {
  return t.shape.slice(0, -2).every((d) => d === 1);
}
