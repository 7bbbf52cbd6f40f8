import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { Overrides } from './overrides';

/**
 * Average-pooling gradients with padding. The forward (cpu and wasm alike)
 * divides each window sum by the number of real, unpadded elements in it, as
 * TensorFlow does; the stock gradient divides by the full window size, so
 * with 'same' padding the border windows get too little gradient (measured:
 * 30-70 % off against finite differences) on cpu, wasm and webgpu. The fix scales dy
 * by fullWindow / realCount per output position and then runs the stock gradient.
 */
/** Backends whose AvgPoolGrad / AvgPool3DGrad kernels divide by the full window (measured). */
export const VERIFIED_WRONG_ON = new Set(['cpu', 'wasm', 'webgpu']);

export function installAvgPoolGrad(o: Overrides): void {
  for (const kernelName of ['AvgPool', 'AvgPool3D'] as const) {
    const stock = tf.getGradient(kernelName);
    if (!stock) throw new TapfitError(ErrorCodes.BACKEND, `gradient fixes: no gradient is registered for kernel '${kernelName}', so its border fix cannot be added. Import '@tensorflow/tfjs' (the union package, which registers the gradients), version 4.22.`);
    o.gradient({
      ...stock,
      gradFunc: (dy, saved, attrs) => {
        // TensorFlow's own kernels (tfjs-node) already get this right.
        if (!VERIFIED_WRONG_ON.has(tf.getBackend())) return stock.gradFunc(dy, saved, attrs);
        const [x] = saved;
        const a = attrs as { filterSize: number | number[]; strides: number | number[]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
        const scale = kernelName === 'AvgPool' ? scale2d(x.shape, a) : scale3d(x.shape, a);
        if (!scale) return stock.gradFunc(dy, saved, attrs);
        const scaled = tf.mul(dy as tf.Tensor, tf.tensor(scale.values, scale.shape));
        return stock.gradFunc(scaled, saved, attrs);
      },
    });
  }
}

interface Scale {
  values: Float32Array;
  shape: number[];
}

function scale2d(xShape: number[], a: { filterSize: number | number[]; strides: number | number[]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' }): Scale | null {
  const info = tf.backend_util.computePool2DInfo(xShape as [number, number, number, number], a.filterSize as [number, number], a.strides as [number, number], 1, a.pad, a.dimRoundingMode);
  const rows = realCounts(info.inHeight, info.outHeight, info.filterHeight, info.strideHeight, info.padInfo.top);
  const cols = realCounts(info.inWidth, info.outWidth, info.filterWidth, info.strideWidth, info.padInfo.left);
  return outer([rows, cols], [info.filterHeight, info.filterWidth], [1, info.outHeight, info.outWidth, 1]);
}

function scale3d(xShape: number[], a: { filterSize: number | number[]; strides: number | number[]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' }): Scale | null {
  const info = tf.backend_util.computePool3DInfo(
    xShape as [number, number, number, number, number], a.filterSize as [number, number, number], a.strides as [number, number, number], 1, a.pad, a.dimRoundingMode,
  );
  const depth = realCounts(info.inDepth, info.outDepth, info.filterDepth, info.strideDepth, info.padInfo.front);
  const rows = realCounts(info.inHeight, info.outHeight, info.filterHeight, info.strideHeight, info.padInfo.top);
  const cols = realCounts(info.inWidth, info.outWidth, info.filterWidth, info.strideWidth, info.padInfo.left);
  return outer([depth, rows, cols], [info.filterDepth, info.filterHeight, info.filterWidth], [1, info.outDepth, info.outHeight, info.outWidth, 1]);
}

/** Unpadded elements of each window along one axis. */
function realCounts(inSize: number, outSize: number, filter: number, stride: number, padBefore: number): number[] {
  return Array.from({ length: outSize }, (_, o) => {
    const start = o * stride - padBefore;
    return Math.min(inSize, start + filter) - Math.max(0, start);
  });
}

/** fullWindow / realCount for every output position, or null when no window touches padding. */
function outer(counts: number[][], filters: number[], shape: number[]): Scale | null {
  if (counts.every((c, axis) => c.every((n) => n === filters[axis]))) return null;
  let values = [1];
  counts.forEach((c, axis) => {
    values = values.flatMap((v) => c.map((n) => (v * filters[axis]) / n));
  });
  return { values: Float32Array.from(values), shape };
}
