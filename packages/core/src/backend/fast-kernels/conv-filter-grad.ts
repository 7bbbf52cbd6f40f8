import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { heapFor } from './wasm-heap';

/**
 * Input channels up to which the direct filter gradient is used. With few input channels
 * (an image net's first layer) the shim's route, a convolution with the batch as the
 * contracted channel, spends its time transposing dy and packing it as XNNPACK's filter
 * on every call, not multiplying: on the MNIST CNN's first layer (28x28x1 -> 16, batch
 * 64) it took 8.5 ms, of which the product was 0.8 ms. With more input channels the
 * products dominate and XNNPACK's multi-threaded product wins. Measured on one thread
 * (28x28 -> 16, batch 64): 3.9 / 8.1 / 10.5 ms here against 8.5 / 10.1 / 11.1 ms by the
 * route for 1 / 3 / 4 input channels; the route's product speeds up with threads, this
 * kernel does not, hence 3.
 */
export const DIRECT_FILTER_GRAD_MAX_CHANNELS = 3;

/** Conv2DBackpropFilter for NHWC float32 with at most DIRECT_FILTER_GRAD_MAX_CHANNELS input channels, in one pass (kernels/conv.ts). */
export function installFastConvFilterGrad(o: Overrides): void {
  const previous = previousKernel('Conv2DBackpropFilter');
  o.kernel(kernelConfig('Conv2DBackpropFilter', 'wasm', (args) => {
    const { x, dy } = args.inputs;
    const a = args.attrs as { strides: number | [number, number]; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding; dataFormat?: string; dimRoundingMode?: 'floor' | 'round' | 'ceil'; filterShape: [number, number, number, number] };
    const heap = heapFor(args.backend);
    const channelsLast = a.dataFormat == null || a.dataFormat === 'NHWC';
    if (!heap || !channelsLast || x.dtype !== 'float32' || dy.dtype !== 'float32' || a.filterShape[2] > DIRECT_FILTER_GRAD_MAX_CHANNELS) return previous(args);
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode);
    const dw = heap.output([...a.filterShape]);
    heap.kernels.convFilterGrad(
      heap.offset(dw), heap.offset(x), heap.offset(dy),
      info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.outChannels,
      info.filterHeight, info.filterWidth, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left,
    );
    return dw;
  }));
}
