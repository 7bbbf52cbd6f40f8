import * as tf from '@tensorflow/tfjs';
import { composite, kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { heapFor } from './wasm-heap';

/**
 * Cost of XNNPACK packing one element of a product's right operand, in units of one
 * element of tapfit's SIMD transpose (measured: 4-10 ns against 1-2 ns per element).
 */
const PACK_COST = 5;

/**
 * Products in the cheaper of two orders. XNNPACK's product (tfjs-backend-wasm's only
 * fast one) packs its right operand, transposing it, on every call: the weights change
 * every step, so nothing is cached, and packing a 2048 x 2048 operand cost a third of
 * the product's time. C = A B can also be computed as C = (B^T A^T)^T, which packs A^T
 * instead: with a batch smaller than the layer widths that is several times less
 * packing for three fast transposes. Both orders do the same multiply-adds in the
 * same order, so the values are the same. Used for the plain product (the forward of
 * a dense layer) and for A B^T (its input gradient, dy W^T, where the shim would
 * transpose B first); A^T B (the weight gradient) already packs the small operand.
 */
export function installMatMulOrder(o: Overrides): void {
  for (const kernelName of ['BatchMatMul', '_FusedMatMul']) {
    const previous = previousKernel(kernelName);
    o.kernel(kernelConfig(kernelName, 'wasm', (args) => {
      const { a, b } = args.inputs;
      const attrs = args.attrs as { transposeA: boolean; transposeB: boolean; activation?: string };
      const plain = !args.inputs.bias && !args.inputs.preluActivationWeights && (attrs.activation ?? 'linear') === 'linear';
      if (attrs.transposeA || !plain || !single(a) || !single(b) || !heapFor(args.backend)) return previous(args);
      const [M, K] = a.shape.slice(-2);
      const N = attrs.transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
      const asIs = attrs.transposeB ? N * K + PACK_COST * K * N : PACK_COST * K * N;
      const reordered = (attrs.transposeB ? 0 : K * N) + M * K + M * N + PACK_COST * K * M;
      if (reordered >= asIs) return previous(args);
      const outShape = [...(a.shape.length >= b.shape.length ? a.shape : b.shape).slice(0, -2), M, N];
      return composite(args.backend, 'wasm', (k) => {
        const aT = k.run('Transpose', { x: k.reshape(a, [M, K]) }, { perm: [1, 0] });
        // B^T as [N, K]: as given for A B^T, transposed for A B.
        const bT = attrs.transposeB ? k.reshape(b, [N, K]) : k.run('Transpose', { x: k.reshape(b, [K, N]) }, { perm: [1, 0] });
        const productT = k.run(kernelName, { a: bT, b: aT }, { ...args.attrs, transposeA: false, transposeB: false });
        return k.reshape(k.run('Transpose', { x: productT }, { perm: [1, 0] }), outShape);
      });
    }));
  }
}

/** No batch: every leading dimension is 1. */
function single(t: tf.TensorInfo): boolean {
  return t.shape.slice(0, -2).every((d) => d === 1);
}
