import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { heapFor } from './wasm-heap';

/**
 * Transpose for 4-byte elements (float32, int32) with SIMD 4x4 tiles, blocked for the
 * cache. Stock wasm walks the output element by element with strided reads: a
 * 2048 x 2048 transpose took about 4x as long as an element-wise add of the same size.
 * Axes that stay next to each other are merged first, so the conv and pooling
 * composites' rank-4 and rank-6 permutations become tiles or whole-row copies.
 */
export function installFastTranspose(o: Overrides): void {
  const stock = previousKernel('Transpose');
  o.kernel(kernelConfig('Transpose', 'wasm', (args) => {
    const x = args.inputs.x;
    const perm = args.attrs.perm as number[];
    const heap = heapFor(args.backend);
    if (!heap || (x.dtype !== 'float32' && x.dtype !== 'int32')) return stock(args);
    const plan = planPermutation(x.shape, perm);
    if (plan === 'stock') return stock(args);
    const out = heap.output(perm.map((a) => x.shape[a]), x.dtype);
    if (plan === 'copy') {
      // Only axes of size 1 move. A copy, not shared data: XNNPACK caches a product's
      // packed right operand by data id, so one id must not appear with two shapes.
      const from = heap.offset(x) >>> 2; // unsigned: offsets reach 4 GiB
      heap.words().copyWithin(heap.offset(out) >>> 2, from, from + tf.util.sizeFromShape(x.shape));
      return out;
    }
    const words = heap.words();
    const m = heap.meta >>> 2;
    words.fill(0, m, m + 40);
    words[m] = plan.outer.length;
    words[m + 1] = plan.rows;
    words[m + 2] = plan.cols;
    words[m + 3] = plan.srcStride;
    words[m + 4] = plan.outStride;
    words[m + 5] = plan.copyRows ? 1 : 0;
    plan.outer.forEach((axis, k) => {
      words[m + 8 + k] = axis.size;
      words[m + 16 + k] = axis.srcStride;
      words[m + 24 + k] = axis.outStride;
    });
    heap.kernels.permute(heap.offset(out), heap.offset(x), heap.meta);
    return out;
  }));
}

export interface PermutationPlan {
  /** Tile shape: rows (source stride srcStride) x cols (contiguous in the source). */
  rows: number;
  cols: number;
  srcStride: number;
  /** Output stride of the tile's columns (its rows are contiguous in the output). */
  outStride: number;
  /** The innermost axis stays innermost: each tile is one row of `cols`, copied whole. */
  copyRows: boolean;
  /** The other axes, in output order. */
  outer: Array<{ size: number; srcStride: number; outStride: number }>;
}

/**
 * How the kernel walks a permutation: axes of size 1 dropped, input axes that stay
 * adjacent and in order merged; 'copy' when nothing moves, 'stock' when more than 8
 * outer axes remain (the kernel's set-up block holds 8).
 */
export function planPermutation(shape: readonly number[], perm: readonly number[]): PermutationPlan | 'copy' | 'stock' {
  // Drop size-1 axes, renumbering the rest.
  const kept = shape.map((d, a) => (d === 1 ? -1 : a)).filter((a) => a >= 0);
  const renumber = new Map(kept.map((a, i) => [a, i]));
  let dims = kept.map((a) => shape[a]);
  let order = perm.filter((a) => renumber.has(a)).map((a) => renumber.get(a)!);
  // Merge input axes a, a+1 that follow each other in the output.
  for (let k = order.length - 2; k >= 0; k--) {
    const a = order[k];
    if (order[k + 1] !== a + 1) continue;
    dims = [...dims.slice(0, a), dims[a] * dims[a + 1], ...dims.slice(a + 2)];
    order = order.filter((_, i) => i !== k + 1).map((b) => (b > a ? b - 1 : b));
  }
  const rank = dims.length;
  if (order.every((a, k) => a === k)) return 'copy';
  const srcStride = new Array<number>(rank);
  for (let a = rank - 1, s = 1; a >= 0; a--) {
    srcStride[a] = s;
    s *= dims[a];
  }
  const outStrideOf = new Array<number>(rank);
  for (let k = rank - 1, s = 1; k >= 0; k--) {
    outStrideOf[order[k]] = s;
    s *= dims[order[k]];
  }
  const q = rank - 1;
  const p = order[rank - 1];
  const outer = order.filter((a) => a !== p && a !== q).map((a) => ({ size: dims[a], srcStride: srcStride[a], outStride: outStrideOf[a] }));
  if (outer.length > 8) return 'stock';
  return p === q
    ? { rows: 1, cols: dims[q], srcStride: dims[q], outStride: 1, copyRows: true, outer }
    : { rows: dims[p], cols: dims[q], srcStride: srcStride[p], outStride: outStrideOf[q], copyRows: false, outer };
}
