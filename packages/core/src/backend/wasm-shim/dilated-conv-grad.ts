import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { runKernel } from '../engine-internals';
import { Overrides } from './overrides';

/**
 * Gradients of dilated conv2d / depthwiseConv2d. Stock tfjs refuses them
 * ("dilation rates greater than 1 are not yet supported in gradients") on every
 * backend, and cpu's depthwise backprop kernels ignore their dilations attr.
 * A conv with dilation d equals a conv with the filter spread out by zeros
 * (size (K-1)*d+1), so the backward runs the ordinary dilation-1 backprops on
 * the spread filter and keeps every d-th tap of the filter gradient.
 * Dilation 1 takes the stock gradient unchanged.
 */
export function installDilatedConvGrad(o: Overrides): void {
  for (const kernelName of ['Conv2D', 'DepthwiseConv2dNative'] as const) {
    const stock = tf.getGradient(kernelName);
    if (!stock) throw new TapfitError(ErrorCodes.BACKEND, `gradient fixes: no gradient is registered for kernel '${kernelName}', so its dilated version cannot be added. Import '@tensorflow/tfjs' (the union package, which registers the gradients), version 4.22.`);
    const backprop = kernelName === 'Conv2D'
      ? { input: 'Conv2DBackpropInput', filter: 'Conv2DBackpropFilter' }
      : { input: 'DepthwiseConv2dNativeBackpropInput', filter: 'DepthwiseConv2dNativeBackpropFilter' };
    o.gradient({
      kernelName,
      inputsToSave: ['x', 'filter'],
      gradFunc: (dy, saved, attrs) => {
        const dilation = pair((attrs as { dilations?: number | [number, number] }).dilations ?? 1);
        if (dilation[0] === 1 && dilation[1] === 1) return stock.gradFunc(dy, saved, attrs);
        const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
        const dy4 = dy as tf.Tensor4D;
        const { strides, pad, dataFormat, dimRoundingMode } = attrs as tf.NamedAttrMap;
        const common = { strides, pad, dataFormat, dimRoundingMode, dilations: [1, 1] };
        const run = (name: string, inputs: tf.NamedTensorMap, extra: tf.NamedAttrMap) =>
          runKernel(name, inputs, { ...common, ...extra } as tf.NamedAttrMap) as tf.Tensor4D;
        return {
          x: () => tf.tidy((): tf.Tensor4D => run(backprop.input, { dy: dy4, filter: spreadFilter(filter, dilation) }, { inputShape: x.shape })),
          filter: () => tf.tidy((): tf.Tensor4D => {
            const spreadShape = spreadFilterShape(filter.shape, dilation);
            return keepEveryDthTap(run(backprop.filter, { x, dy: dy4 }, { filterShape: spreadShape }), dilation, filter.shape);
          }),
        };
      },
    });
  }
}

function pair(v: number | [number, number]): [number, number] {
  return typeof v === 'number' ? [v, v] : v;
}

function spreadFilterShape([KH, KW, I, O]: number[], [dh, dw]: [number, number]): [number, number, number, number] {
  return [(KH - 1) * dh + 1, (KW - 1) * dw + 1, I, O];
}

/** [KH,KW,I,O] -> [(KH-1)dh+1, (KW-1)dw+1, I, O] with zeros between the taps. */
function spreadFilter(filter: tf.Tensor4D, [dh, dw]: [number, number]): tf.Tensor4D {
  const [KH, KW, I, O] = filter.shape;
  return filter
    .reshape([KH, 1, KW, 1, I, O])
    .pad([[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]])
    .reshape([KH * dh, KW * dw, I, O])
    .slice([0, 0, 0, 0], spreadFilterShape(filter.shape, [dh, dw])) as tf.Tensor4D;
}

/** Inverse selection of `spreadFilter`: the taps at multiples of the dilation. */
function keepEveryDthTap(spread: tf.Tensor4D, [dh, dw]: [number, number], [KH, KW, I, O]: number[]): tf.Tensor4D {
  return spread
    .pad([[0, dh - 1], [0, dw - 1], [0, 0], [0, 0]])
    .reshape([KH, dh, KW, dw, I, O])
    .slice([0, 0, 0, 0, 0, 0], [KH, 1, KW, 1, I, O])
    .reshape([KH, KW, I, O]) as tf.Tensor4D;
}
