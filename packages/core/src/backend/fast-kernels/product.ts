import type * as tf from '@tensorflow/tfjs';
import { partRange } from './kernel-threads';
import type { WasmHeap } from './wasm-heap';

/**
 * Multiply-adds from which tapfit's product is split over the helper threads (smaller
 * ones run on the main thread: waking a helper costs about 10 us, and right after an
 * XNNPACK operation its spinning pool holds the other core; measured on 2 cores by
 * `npm run bench -- kernels --threads=2`: 1-4 M multiply-adds, e.g. `dy W^T` of 8 rows
 * against W [1568,128], ran slower split than in one part).
 */
const MIN_SPLIT_MACS = 2 ** 22;

/** Rows per part of a split product: multiples of the kernel's 4-row tile. */
const SPLIT_ALIGN = 4;

/**
 * Fewest rows per part: every part packs all of y again, which costs about as much as
 * multiplying 6 rows by it (measured: the MNIST CNN's first filter gradient, 9 rows, took
 * 1.61 ms in two parts against 1.42 in one).
 */
const MIN_ROWS_PER_PART = 16;

/**
 * x [M, K] y [K, N] by tapfit's product (kernels/gemm.ts) into a new tensor of `outShape`
 * (M N elements): 'packed' (blocks of y copied, split over the threads), 'inPlace' (y
 * read as it lies, one thread: a few rows), 'rows' (x y^T for y given as [N, K]: the row
 * product).
 */
export function gemmInto(heap: WasmHeap, x: tf.TensorInfo, y: tf.TensorInfo, M: number, K: number, N: number, outShape: number[], route: 'packed' | 'inPlace' | 'rows' = 'packed'): tf.TensorInfo {
  const out = heap.output(outShape);
  const [c, a, b] = [heap.offset(out), heap.offset(x), heap.offset(y)];
  // No terms to sum (a filter gradient of an empty batch): the kernel would leave the new buffer as it found it.
  if (K === 0) {
    new Float32Array(heap.words().buffer, c, M * N).fill(0);
    return out;
  }
  if (route === 'rows') heap.kernels.gemmNT(c, a, b, M, K, N);
  else if (route === 'inPlace') heap.kernels.gemm(c, a, b, M, K, N, 0);
  else {
    const parts = M * K * N >= MIN_SPLIT_MACS ? Math.max(1, Math.min(heap.parts(), Math.floor(M / MIN_ROWS_PER_PART))) : 1;
    // Rows of x (and of the product) in parts, each a product of its own on one thread:
    // every output element is summed exactly as in the whole product.
    heap.run('gemm', Array.from({ length: parts }, (_, part) => {
      const [from, to] = partRange(M, part, parts, SPLIT_ALIGN);
      return [c + from * N * 4, a + from * K * 4, b, to - from, K, N, heap.gemmScratch[part]] as [number, number, number, number, number, number, number];
    }));
  }
  return out;
}

