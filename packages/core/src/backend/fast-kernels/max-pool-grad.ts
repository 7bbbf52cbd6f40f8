import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { partRange } from './kernel-threads';
import { previousKernel } from './previous-kernel';
import { heapFor } from './wasm-heap';

/** Input elements from which the gradient is split over the helper threads by batch ranges. */
const MIN_SPLIT_ELEMENTS = 2 ** 18;

/**
 * MaxPoolGrad for windows that tile the input (window == stride, e.g. 2x2/2) in one
 * pass: each window's dy goes to its first maximum in row-major order (the cpu
 * kernel's rule). The shim's composite for the same case (windows laid out on a last
 * axis, ArgMax, OneHot, scale, laid back) moved the data about ten times. Overlapping
 * windows keep the shim's route.
 */
export function installFastMaxPoolGrad(o: Overrides): void {
  const previous = previousKernel('MaxPoolGrad');
  o.kernel(kernelConfig('MaxPoolGrad', 'wasm', (args) => {
    const { dy, input } = args.inputs;
    const a = args.attrs as { filterSize: number | [number, number]; strides: number | [number, number]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
    const heap = heapFor(args.backend);
    if (!heap || input.dtype !== 'float32' || dy.dtype !== 'float32') return previous(args);
    const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
    if (info.filterHeight !== info.strideHeight || info.filterWidth !== info.strideWidth) return previous(args);
    const dx = heap.output(input.shape);
    const [to, from, grad] = [heap.offset(dx), heap.offset(input), heap.offset(dy)];
    const parts = tf.util.sizeFromShape(input.shape) >= MIN_SPLIT_ELEMENTS ? Math.min(heap.parts(), info.batchSize) : 1;
    heap.run('maxPoolGradTiled', Array.from({ length: parts }, (_, part) => {
      const [b0, b1] = partRange(info.batchSize, part, parts, 1);
      return [to, from, grad, info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.filterHeight, info.filterWidth, info.padInfo.top, info.padInfo.left, b0, b1] as Parameters<typeof heap.kernels.maxPoolGradTiled>;
    }));
    return dx;
  }));
}
