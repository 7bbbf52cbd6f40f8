import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { flippedFilter } from './flip-filter';
import { adjointPadding, composite, ConvPad, insertStrideZeros, kernelConfig } from './kernel-calls';
import { Overrides } from './overrides';

/*
 * Both conv2d backprops as plain stride-1 wasm Conv2D calls (XNNPACK), for NHWC.
 * Forward: y[b,oh,ow,o] = sum x[b, oh*sh+kh-top, ow*sw+kw-left, i] * W[kh,kw,i,o].
 *
 * dx: correlate dy (zeros inserted between rows/columns for the stride) with W
 *     flipped in space and with in/out channels swapped, padded "full".
 * dW: make the input channel the batch and the batch the contracted channel:
 *     x^T[i,h,w,b] correlated with dy^T[oh,ow,b,o] as a filter dilated by the
 *     stride gives dW^T[i,kh,kw,o].
 * Both cost about one forward conv. wasm has no Conv2DBackpropFilter at all and
 * its Conv2DBackpropInput is ~5x slower than this (docs/backends.md §3).
 */

interface Conv2DBackpropAttrs {
  strides: number | [number, number];
  pad: ConvPad;
  dataFormat: 'NHWC' | 'NCHW';
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function installConv2DBackprop(o: Overrides): void {
  const stockInput = tf.getKernel('Conv2DBackpropInput', 'wasm');

  o.kernel(kernelConfig('Conv2DBackpropInput', 'wasm', ({ inputs, attrs, backend }) => {
      const { dy, filter } = inputs;
      const a = attrs as unknown as Conv2DBackpropAttrs & { inputShape: [number, number, number, number] };
      if (a.dataFormat === 'NCHW' && stockInput) return stockInput.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend }) as tf.TensorInfo;
      assertChannelsLast('Conv2DBackpropInput', a.dataFormat);
      const info = tf.backend_util.computeConv2DInfo(a.inputShape, filter.shape as [number, number, number, number], a.strides, 1, a.pad, a.dimRoundingMode);
      return composite(backend, 'wasm', (k) => {
        const [KH, KW] = filter.shape;
        const flipped = flippedFilter(k, filter, true);
        const spread = insertStrideZeros(k, dy, info.strideHeight, info.strideWidth);
        const rows = adjointPadding(spread.shape[1], KH, info.padInfo.top, info.inHeight);
        const cols = adjointPadding(spread.shape[2], KW, info.padInfo.left, info.inWidth);
        const dx = k.run('Conv2D', { x: spread, filter: flipped }, {
          strides: [1, 1], pad: [[0, 0], rows.pad, cols.pad, [0, 0]], dataFormat: 'NHWC', dilations: [1, 1],
        });
        return k.slice(dx, [0, rows.crop, cols.crop, 0], [info.batchSize, info.inHeight, info.inWidth, info.inChannels]);
      });
  }));

  o.kernel(kernelConfig('Conv2DBackpropFilter', 'wasm', ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs;
      const a = attrs as unknown as Conv2DBackpropAttrs & { filterShape: [number, number, number, number] };
      assertChannelsLast('Conv2DBackpropFilter', a.dataFormat);
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], a.filterShape, a.strides, 1, a.pad, a.dimRoundingMode);
      const [KH, KW, CI, CO] = a.filterShape;
      const { top, bottom, left, right } = info.padInfo;
      return composite(backend, 'wasm', (k) => {
        const xT = k.run('Transpose', { x }, { perm: [3, 1, 2, 0] });
        const dyT = k.run('Transpose', { x: dy }, { perm: [1, 2, 0, 3] });
        const dWT = k.run('Conv2D', { x: xT, filter: dyT }, {
          strides: [1, 1], pad: [[0, 0], [top, bottom], [left, right], [0, 0]], dataFormat: 'NHWC',
          dilations: [info.strideHeight, info.strideWidth],
        });
        // A stride that does not divide the padded input leaves extra taps at the end.
        const cut = k.slice(dWT, [0, 0, 0, 0], [CI, KH, KW, CO]);
        return k.run('Transpose', { x: cut }, { perm: [1, 2, 0, 3] });
      });
  }));
}

export function assertChannelsLast(kernel: string, dataFormat: string | undefined): void {
  if (dataFormat != null && dataFormat !== 'NHWC') {
    throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${kernel}' supports dataFormat 'NHWC' only on wasm (got '${dataFormat}'). Transpose the data to channels-last (dataFormat: 'channelsLast'), or use selectBackend('cpu').`);
  }
}
