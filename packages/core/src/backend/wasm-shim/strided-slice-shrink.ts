import * as tf from '@tensorflow/tfjs';
import { callKernel, composite, kernelConfig } from './kernel-calls';
import { Overrides } from './overrides';

/*
 * tfjs 4.22's StridedSlice reads the wrong elements when an axis is shrunk (an index,
 * `shrinkAxisMask`) and another axis has a stride other than 1: its strided loop walks a
 * shape from which the shrunk axes were dropped against begins and strides that still
 * have them. x[1, ::3, 2] of a [4, 5, 3] range returned [1, 2] instead of [17, 26], and
 * x[1, ::3, :] read past the end. Same on cpu, wasm and webgpu. Those calls are computed here as a
 * gather of the elements' flat positions; every other call keeps the stock kernel.
 */

/** The StridedSlice kernel's attributes. */
export interface StridedSliceAttrs {
  begin: number[];
  end: number[];
  strides: number[];
  beginMask: number;
  endMask: number;
  ellipsisMask: number;
  newAxisMask: number;
  shrinkAxisMask: number;
}

/** tfjs's reading of a StridedSlice call on `shape`: begins, ends and strides per axis of x, output shape, fast paths. */
export function stridedSliceInfo(shape: number[], a: StridedSliceAttrs): ReturnType<typeof tf.slice_util.sliceInfo> {
  return tf.slice_util.sliceInfo(shape, a.begin, a.end, a.strides, a.beginMask, a.endMask, a.ellipsisMask, a.newAxisMask, a.shrinkAxisMask);
}

export function installStridedSliceShrinkFix(o: Overrides, backends: readonly string[]): void {
  for (const backendName of backends) {
    const stock = tf.getKernel('StridedSlice', backendName);
    if (!stock) continue;
    o.kernel(kernelConfig('StridedSlice', backendName, (args) => {
      const { x } = args.inputs;
      const a = args.attrs as unknown as StridedSliceAttrs;
      const info = stridedSliceInfo(x.shape, a);
      const general = !info.isIdentity && !info.sliceDim0 && !info.isSimpleSlice;
      if (!general || a.shrinkAxisMask === 0) return callKernel(stock, args);
      const positions = flatPositions(x.shape, info.begin, info.end, info.strides);
      return composite(args.backend, backendName, (k) => {
        const flat = k.reshape(x, [tf.util.sizeFromShape(x.shape)]);
        const where = k.track({ dataId: args.backend.write(positions, [positions.length], 'int32'), shape: [positions.length], dtype: 'int32' });
        const picked = k.run('GatherV2', { x: flat, indices: where }, { axis: 0, batchDims: 0 });
        return k.reshape(picked, info.finalShape);
      });
    }));
  }
}

/** Row-major flat positions of begin[d] + i * strides[d] for every axis d, until end[d] (exclusive, either direction). */
export function flatPositions(shape: readonly number[], begin: readonly number[], end: readonly number[], strides: readonly number[]): Int32Array {
  const counts = shape.map((_, d) => Math.max(0, Math.ceil((end[d] - begin[d]) / strides[d])));
  const total = counts.reduce((p, c) => p * c, 1);
  const rowStride = tf.util.computeStrides(shape as number[]);
  const out = new Int32Array(total);
  const at = new Array<number>(shape.length).fill(0);
  for (let k = 0; k < total; k++) {
    let flat = 0;
    for (let d = 0; d < shape.length; d++) flat += (begin[d] + at[d] * strides[d]) * (d < shape.length - 1 ? rowStride[d] : 1);
    out[k] = flat;
    for (let d = shape.length - 1; d >= 0 && ++at[d] === counts[d]; d--) at[d] = 0;
  }
  return out;
}
