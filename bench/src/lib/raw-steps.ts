import * as tf from '@tensorflow/tfjs';

/** One training step on fixed data and how to free it: the unit the backend and GPU benches time. */
export interface RawStep {
  step(): unknown;
  dispose(): void;
}

/** Seeded random inputs and cycling one-hot labels for a batch. */
function batchOf(shape: number[], seed: number): { x: tf.Tensor; y: tf.Tensor } {
  return tf.tidy(() => ({
    x: tf.randomNormal(shape, 0, 1, 'float32', seed),
    y: tf.oneHot(tf.tensor1d(Array.from({ length: shape[0] }, (_, i) => i % 10), 'int32'), 10).toFloat(),
  }));
}

/**
 * A dense ReLU chain (e.g. 784-512-512-10) written with tfjs ops and trained by
 * tf.train.sgd on softmax cross-entropy: no layers, no tapfit, the backend's own speed.
 */
export function rawMlpStep(dims: number[], batch: number): RawStep {
  const params = dims.slice(1).flatMap((d, i) => [
    tf.variable(tf.mul(tf.randomNormal([dims[i], d], 0, 1, 'float32', i + 1), Math.sqrt(2 / dims[i]))),
    tf.variable(tf.zeros([d])),
  ]);
  const { x, y } = batchOf([batch, dims[0]], 9);
  const opt = tf.train.sgd(0.01);
  const forward = () => {
    let h: tf.Tensor = x;
    for (let i = 0; i < params.length; i += 2) {
      h = tf.add(tf.matMul(h, params[i]), params[i + 1]);
      if (i + 2 < params.length) h = tf.relu(h);
    }
    return tf.losses.softmaxCrossEntropy(y, h) as tf.Scalar;
  };
  return {
    // The loss is read after the update was queued, so the read waits for the update too.
    step: () => tf.tidy(() => void opt.minimize(forward, true)!.dataSync()),
    dispose: () => {
      tf.dispose([...params, x, y]);
      opt.dispose();
    },
  };
}

/** tfjs-layers conv16-pool-conv32-pool-dense128-dense10 on 28x28x1 trained by model.trainOnBatch with SGD. */
export function layersCnnStep(batch: number): RawStep {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 128, activation: 'relu', kernelInitializer: init(3) }),
      tf.layers.dense({ units: 10, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
  const { x, y } = batchOf([batch, 28, 28, 1], 5);
  return {
    step: () => model.trainOnBatch(x, y),
    dispose: () => {
      model.dispose();
      tf.dispose([x, y]);
    },
  };
}
