import * as tf from '@tensorflow/tfjs';
import { composite, kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { partRange } from './kernel-threads';
import { previousKernel } from './previous-kernel';
import { gemmInto } from './product';
import { heapFor } from './wasm-heap';

/**
 * Largest patch matrix (elements: output positions x batch x filter taps x input
 * channels) built for a filter gradient; larger ones take the shim's route (256 MiB).
 */
const MAX_PATCH_ELEMENTS = 2 ** 26;

/**
 * Patch elements from which building them is split over the helper threads (measured on
 * 2 cores: the MNIST CNN's first layer, 0.45 M elements, was slower split).
 */
const MIN_SPLIT_ELEMENTS = 2 ** 20;

/**
 * Conv2DBackpropFilter for NHWC float32 as one product: dW [KH KW CI, CO] = patches^T
 * [KH KW CI, (oh, ow, b)] dy [(oh, ow, b), CO], the transposed patches built by
 * kernels/conv.ts. The product sums over (oh, ow, b) in that order, from zero, as the
 * shim's route does (a convolution with the batch as the contracted channel), so the
 * values are the route's. The route spent its time transposing dy and having XNNPACK
 * pack it as a filter on every call (8.5 ms for the MNIST CNN's first layer, 28x28x1 ->
 * 16 at batch 64, of which the product was 0.8 ms); here the patches are copied in runs
 * from x transposed to [CI, H, W, B] (one pass over x) and the product is tapfit's,
 * split over the threads like every other.
 */
export function installFastConvFilterGrad(o: Overrides): void {
  const previous = previousKernel('Conv2DBackpropFilter');
  o.kernel(kernelConfig('Conv2DBackpropFilter', 'wasm', (args) => {
    const { x, dy } = args.inputs;
    const a = args.attrs as { strides: number | [number, number]; pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding; dataFormat?: string; dimRoundingMode?: 'floor' | 'round' | 'ceil'; filterShape: [number, number, number, number] };
    const heap = heapFor(args.backend);
    const channelsLast = a.dataFormat == null || a.dataFormat === 'NHWC';
    if (!heap || !channelsLast || x.dtype !== 'float32' || dy.dtype !== 'float32') return previous(args);
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode);
    const columns = info.outHeight * info.outWidth * info.batchSize;
    const taps = info.filterHeight * info.filterWidth * info.inChannels;
    // Also an empty output (no columns): the shim's route handles it (zeros).
    if (columns * taps > MAX_PATCH_ELEMENTS || columns === 0) return previous(args);
    return composite(args.backend, 'wasm', (k) => {
      // x [B, H, W, CI] as [CI, H, W, B]: a patch row's columns are then whole runs of it.
      const xT = k.run('Transpose', { x }, { perm: [3, 1, 2, 0] });
      const patchesT = k.track(heap.output([taps, columns]));
      const [to, from] = [heap.offset(patchesT), heap.offset(xT)];
      const parts = columns * taps >= MIN_SPLIT_ELEMENTS ? Math.min(heap.parts(), taps) : 1;
      heap.run('im2colT', Array.from({ length: parts }, (_, part) => {
        const [t0, t1] = partRange(taps, part, parts, 1);
        return [to, from, info.batchSize, info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.filterWidth, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left, t0, t1] as Parameters<typeof heap.kernels.im2colT>;
      }));
      // dy [B, OH, OW, CO] as [(oh, ow, b), CO].
      const dyRows = k.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
      return k.reshape(k.track(gemmInto(heap, patchesT, dyRows, taps, columns, info.outChannels, [taps, info.outChannels])), [...a.filterShape]);
    });
  }));
}
