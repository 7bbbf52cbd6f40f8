import * as tf from '@tensorflow/tfjs';
import { composite, kernelConfig, type KernelImpl } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { gemmInto } from './product';
import { heapFor, type WasmHeap } from './wasm-heap';

/**
 * Products of fewer rows than this read W as it lies, on one thread: packing W would not
 * pay for so few rows. Measured by `npm run bench -- kernels [--threads=2]` (README, Fast
 * kernels).
 */
const FEW_ROWS = 8;

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
 * dy W^T) through tapfit's product instead of XNNPACK's.
 *
 * XNNPACK's product (tfjs-backend-wasm's only fast one) packs its right operand on every
 * call, at about 10 ns an element: the weights change every step, so its cache of packed
 * operands never hits, and packing a 2048 x 2048 operand cost a third of the product's
 * time. tapfit's product (kernels/gemm.ts) packs 256 x 256 blocks itself as it goes (well
 * under 1 ns an element) and, with wasm threads, is split over the helper threads by rows
 * (kernel-threads.ts).
 *
 * - 8 rows or more: x W directly; dy W^T as (W dy^T)^T (two transposes of batch-sized
 *   operands); x^T dy as (x^T) dy, one transpose of x, when dy has 64 columns or more
 *   and the batch 4 rows or more (otherwise the shim's route: x transposed, the small dy
 *   packed by XNNPACK).
 * - A batch of 1-7 rows (batch-1 training, the pipeline's micro-batches): W read as it
 *   lies, on one thread: x W through the product without packing, dy W^T through the row
 *   product, which transposes four rows of W at a time in registers.
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
      return ownProduct(heap, args, M, K, N, outShape);
    }));
  }
}

/** tapfit's product: A B directly, A B^T as (B A^T)^T (B as it lies, A^T of batch size). */
function ownProduct(heap: WasmHeap, args: Parameters<KernelImpl>[0], M: number, K: number, N: number, outShape: number[]): tf.TensorInfo {
  const { a, b } = args.inputs;
  const { transposeB } = args.attrs as { transposeB: boolean };
  if (!transposeB) return gemmInto(heap, a, b, M, K, N, outShape);
  return composite(args.backend, 'wasm', (k) => {
    const aT = k.run('Transpose', { x: k.reshape(a, [M, K]) }, { perm: [1, 0] });
    const productT = k.track(gemmInto(heap, b, aT, N, K, M, [N, M], N < FEW_ROWS ? 'inPlace' : 'packed'));
    return k.reshape(k.run('Transpose', { x: productT }, { perm: [1, 0] }), outShape);
  });
}

/** No batch: every leading dimension is 1. */
function single(t: tf.TensorInfo): boolean {
  return t.shape.slice(0, -2).every((d) => d === 1);
}
