import * as tf from '@tensorflow/tfjs';
import type { Overrides } from './overrides';

type Shape = Array<number | null>;

interface Conv1DLayer {
  padding: string;
  kernelSize: number[];
  dilationRate: number[];
  dataFormat: string;
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: object): tf.Tensor;
  computeOutputShape(inputShape: Shape | Shape[]): Shape | Shape[];
}

/**
 * tfjs-layers' Conv1D with `padding: 'causal'` (WaveNet and TCN-style models, Keras's
 * causal convolutions). tfjs-layers 4.22 accepts the option, then its call throws ("The
 * support for CAUSAL padding mode in conv1dWithBias is not implemented yet") and its
 * output length is computed as for 'valid'. As Keras does it: the input is padded with
 * dilation (kernel - 1) zeros at the start of the time axis and convolved 'valid', so step
 * t sees only steps up to t; the output length is that of 'same'.
 */
export function installConv1dCausalLayer(o: Overrides): void {
  const proto = Object.getPrototypeOf(tf.layers.conv1d({ filters: 1, kernelSize: 1 })) as Conv1DLayer;
  const call = proto.call;
  const computeOutputShape = proto.computeOutputShape;
  const withPadding = <T>(layer: Conv1DLayer, padding: string, f: () => T): T => {
    layer.padding = padding;
    try {
      return f();
    } finally {
      layer.padding = 'causal';
    }
  };
  o.replace(proto, 'call', function (this: Conv1DLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: object): tf.Tensor {
    if (this.padding !== 'causal') return call.call(this, inputs, kwargs);
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const time = this.dataFormat === 'channelsFirst' ? 2 : 1;
      const start = this.dilationRate[0] * (this.kernelSize[0] - 1);
      const padded = tf.pad(x, x.shape.map((_, axis) => (axis === time ? [start, 0] : [0, 0])) as Array<[number, number]>);
      return withPadding(this, 'valid', () => call.call(this, padded, kwargs));
    });
  });
  o.replace(proto, 'computeOutputShape', function (this: Conv1DLayer, inputShape: Shape | Shape[]): Shape | Shape[] {
    if (this.padding !== 'causal') return computeOutputShape.call(this, inputShape);
    return withPadding(this, 'same', () => computeOutputShape.call(this, inputShape));
  });
}
