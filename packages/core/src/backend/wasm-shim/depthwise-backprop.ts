import * as tf from '@tensorflow/tfjs';
import { flippedFilter } from './flip-filter';
import { adjointPadding, composite, ConvPad, insertStrideZeros, kernelConfig } from './kernel-calls';
import { Overrides } from './overrides';

/*
 * Depthwise conv2d backprops as single wasm DepthwiseConv2dNative calls.
 * Forward (M = channel multiplier, d = dilation):
 *   y[b,oh,ow,c*M+m] = sum x[b, oh*sh+kh*dh-top, ow*sw+kw*dw-left, c] * W[kh,kw,c,m].
 *
 * dx: a depthwise conv of the zero-inserted dy over all C*M channels with the
 *     spatially flipped filter (dilated like the forward), then a sum over m.
 * dW: put the batch into the channel axis, x' = [1,H,W,B*C], and use dy as a
 *     per-channel filter [OH,OW,B*C,M] dilated by the stride; the output, taken
 *     with a step of the forward dilation, is dW per (b,c), summed over b.
 * tfjs-backend-wasm has neither kernel; copying to the cpu kernels costs ~1 s
 * for one [32,32,32,32] 3x3 layer, these run in tens of ms.
 */

interface DepthwiseAttrs {
  strides: number | [number, number];
  dilations?: number | [number, number];
  pad: ConvPad;
  dimRoundingMode?: 'floor' | 'round' | 'ceil';
}

export function installDepthwiseBackprop(o: Overrides): void {
  o.kernel(kernelConfig('DepthwiseConv2dNativeBackpropInput', 'wasm', ({ inputs, attrs, backend }) => {
      const { dy, filter } = inputs;
      const a = attrs as unknown as DepthwiseAttrs & { inputShape: [number, number, number, number] };
      const info = convInfo(a.inputShape, filter.shape, a);
      const [KH, KW, C, M] = filter.shape;
      const [B, H, W] = a.inputShape;
      return composite(backend, 'wasm', (k) => {
        const flipped = k.reshape(flippedFilter(k, filter, false), [KH, KW, C * M, 1]);
        const spread = insertStrideZeros(k, dy, info.strideHeight, info.strideWidth);
        const rows = adjointPadding(spread.shape[1], info.effectiveFilterHeight, info.padInfo.top, H);
        const cols = adjointPadding(spread.shape[2], info.effectiveFilterWidth, info.padInfo.left, W);
        const full = k.run('DepthwiseConv2dNative', { x: spread, filter: flipped }, {
          strides: [1, 1], dilations: [info.dilationHeight, info.dilationWidth], pad: [[0, 0], rows.pad, cols.pad, [0, 0]],
        });
        const perMultiplier = k.slice(full, [0, rows.crop, cols.crop, 0], [B, H, W, C * M]);
        if (M === 1) return perMultiplier;
        return k.run('Sum', { x: k.reshape(perMultiplier, [B, H, W, C, M]) }, { axis: [4], keepDims: false });
      });
  }));

  o.kernel(kernelConfig('DepthwiseConv2dNativeBackpropFilter', 'wasm', ({ inputs, attrs, backend }) => {
      const { x, dy } = inputs;
      const a = attrs as unknown as DepthwiseAttrs & { filterShape: [number, number, number, number] };
      const info = convInfo(x.shape, a.filterShape, a);
      const [KH, KW, C, M] = a.filterShape;
      const [B, H, W] = x.shape;
      const [, OH, OW] = dy.shape;
      const { top, bottom, left, right } = info.padInfo;
      return composite(backend, 'wasm', (k) => {
        const xByChannel = k.reshape(k.run('Transpose', { x }, { perm: [1, 2, 0, 3] }), [1, H, W, B * C]);
        const dy5 = k.reshape(dy, [B, OH, OW, C, M]);
        const dyAsFilter = k.reshape(k.run('Transpose', { x: dy5 }, { perm: [1, 2, 0, 3, 4] }), [OH, OW, B * C, M]);
        const perBatch = k.run('DepthwiseConv2dNative', { x: xByChannel, filter: dyAsFilter }, {
          strides: [info.dilationHeight, info.dilationWidth], dilations: [info.strideHeight, info.strideWidth],
          pad: [[0, 0], [top, bottom], [left, right], [0, 0]],
        });
        const cut = k.reshape(k.slice(perBatch, [0, 0, 0, 0], [1, KH, KW, B * C * M]), [KH, KW, B, C * M]);
        return k.reshape(k.run('Sum', { x: cut }, { axis: [2], keepDims: false }), [KH, KW, C, M]);
      });
  }));
}

function convInfo(xShape: number[], filterShape: number[], a: DepthwiseAttrs): tf.backend_util.Conv2DInfo {
  return tf.backend_util.computeConv2DInfo(
    xShape as [number, number, number, number], filterShape as [number, number, number, number],
    a.strides, a.dilations ?? 1, a.pad, a.dimRoundingMode, true,
  );
}
