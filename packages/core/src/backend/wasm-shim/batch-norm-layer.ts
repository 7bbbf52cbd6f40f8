import * as tf from '@tensorflow/tfjs';
import type { Overrides } from './overrides';

interface BatchNormalizationLayer {
  gamma: { read(): tf.Tensor } | null;
  beta: { read(): tf.Tensor } | null;
  movingMean: { read(): tf.Tensor };
  call(inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor;
}

/**
 * tfjs-layers' BatchNormalization with `scale: false` or `center: false` in training.
 * tfjs-layers 4.22 reads gamma and beta unconditionally on its training path, so such a
 * layer threw "Cannot read properties of undefined (reading 'read')" on the first
 * training batch (inference was fine). For the call, a missing gamma reads as ones and a
 * missing beta as zeros, which is what the options mean; the layer gains no weights, so
 * saved models and Keras weight files keep their layout.
 */
export function installBatchNormLayerFix(o: Overrides): void {
  const proto = Object.getPrototypeOf(tf.layers.batchNormalization({})) as BatchNormalizationLayer;
  const call = proto.call;
  o.replace(proto, 'call', function (this: BatchNormalizationLayer, inputs: tf.Tensor | tf.Tensor[], kwargs: { training?: boolean }): tf.Tensor {
    if (!kwargs?.training || (this.gamma && this.beta)) return call.call(this, inputs, kwargs);
    const [gamma, beta] = [this.gamma, this.beta];
    const constant = (fill: (t: tf.Tensor) => tf.Tensor) => ({ read: () => fill(this.movingMean.read()) });
    this.gamma = gamma ?? constant(tf.onesLike);
    this.beta = beta ?? constant(tf.zerosLike);
    try {
      return call.call(this, inputs, kwargs);
    } finally {
      [this.gamma, this.beta] = [gamma, beta];
    }
  });
}
