import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { heapFor } from './wasm-heap';

/**
 * Sum over the leading axes of a float32 tensor (the bias gradient of every dense and
 * conv layer: dy summed over batch, height and width) in one pass. The stock kernel
 * first transposes the reduced axes to the end, a full copy of dy. Same order of
 * additions (row by row, in float32), so the same values.
 */
export function installSumLeading(o: Overrides): void {
  const stock = previousKernel('Sum');
  o.kernel(kernelConfig('Sum', 'wasm', (args) => {
    const x = args.inputs.x;
    const { axis, keepDims } = args.attrs as { axis: number | number[]; keepDims: boolean };
    const heap = heapFor(args.backend);
    const rank = x.shape.length;
    const axes = [...new Set(tf.util.parseAxisParam(axis, x.shape))].sort((p, q) => p - q);
    const leading = axes.length > 0 && axes.length < rank && axes.every((a, i) => a === i);
    if (!heap || x.dtype !== 'float32' || !leading) return stock(args);
    const rows = tf.util.sizeFromShape(x.shape.slice(0, axes.length));
    const kept = x.shape.slice(axes.length);
    const out = heap.output(keepDims ? [...axes.map(() => 1), ...kept] : kept);
    heap.kernels.sumRows(heap.offset(out), heap.offset(x), rows, tf.util.sizeFromShape(kept));
    return out;
  }));
}
