import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { ADAM_MOMENTS_KERNEL, SCALED_SUM_KERNEL, type AdamCoefficients } from '../../transforms/fused-update-kernels';
import { composite, kernelConfig, Scratch } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { runElementwise } from './elementwise';
import { heapFor } from './wasm-heap';

/**
 * The step transforms' fused updates (transforms/fused-updates.ts) on wasm: momentum's
 * a v + b g and Adam's moments and direction in one SIMD pass each. Without tapfit's
 * kernel module they run as the same chain of stock kernels.
 */
export function installUpdateKernels(o: Overrides): void {
  o.kernel(kernelConfig(SCALED_SUM_KERNEL, 'wasm', ({ inputs: { x, y }, attrs, backend }) => {
    const { a, b } = attrs as { a: number; b: number };
    checkFloat32(SCALED_SUM_KERNEL, [x, y]);
    const heap = heapFor(backend);
    if (!heap) return composite(backend, 'wasm', (k) => k.run('Add', { a: scale(k, x, a), b: scale(k, y, b) }));
    const out = heap.output(x.shape);
    const [to, xs, ys] = [heap.offset(out), heap.offset(x), heap.offset(y)];
    runElementwise(heap, 'axpby', tf.util.sizeFromShape(x.shape), (from, n) => [to + 4 * from, xs + 4 * from, ys + 4 * from, a, b, n]);
    return out;
  }));
  o.kernel(kernelConfig(ADAM_MOMENTS_KERNEL, 'wasm', ({ inputs: { g, mu, nu }, attrs, backend }) => {
    const c = attrs as unknown as AdamCoefficients;
    checkFloat32(ADAM_MOMENTS_KERNEL, [g, mu, nu]);
    const heap = heapFor(backend);
    if (!heap) return adamFromStockKernels(backend, g, mu, nu, c);
    const outs = [heap.output(g.shape), heap.output(g.shape), heap.output(g.shape)];
    const [m, v, d, gs, ms, vs] = [...outs, g, mu, nu].map((t) => heap.offset(t));
    runElementwise(heap, 'adam', tf.util.sizeFromShape(g.shape), (from, n) => {
      const at = (p: number) => p + 4 * from;
      return [at(m), at(v), at(d), at(gs), at(ms), at(vs), c.b1, 1 - c.b1, c.b2, 1 - c.b2, c.muScale, c.nuScale, c.eps, n];
    });
    return outs;
  }));
}

function scale(k: Scratch, x: tf.TensorInfo, s: number): tf.TensorInfo {
  return s === 1 ? x : k.run('Multiply', { a: x, b: k.scalar(s) });
}

function adamFromStockKernels(backend: tf.KernelBackend, g: tf.TensorInfo, mu: tf.TensorInfo, nu: tf.TensorInfo, c: AdamCoefficients): tf.TensorInfo[] {
  const m = composite(backend, 'wasm', (k) => k.run('Add', { a: scale(k, mu, c.b1), b: scale(k, g, 1 - c.b1) }));
  const v = composite(backend, 'wasm', (k) => k.run('Add', { a: scale(k, nu, c.b2), b: scale(k, k.run('Square', { x: g }), 1 - c.b2) }));
  const d = composite(backend, 'wasm', (k) =>
    k.run('RealDiv', { a: scale(k, m, c.muScale), b: k.run('Add', { a: k.run('Sqrt', { x: scale(k, v, c.nuScale) }), b: k.scalar(c.eps) }) }),
  );
  return [m, v, d];
}

function checkFloat32(kernel: string, ts: tf.TensorInfo[]): void {
  if (ts.every((t) => t.dtype === 'float32' && tf.util.arraysEqual(t.shape, ts[0].shape))) return;
  throw new TapfitError(ErrorCodes.SHAPE, `kernel '${kernel}' needs float32 tensors of one shape, got ${ts.map((t) => `${t.dtype}[${t.shape}]`).join(', ')}; call it through scaledSum / adamMoments (from @tapfit/core), which fall back to tf.mul / tf.add otherwise.`);
}
