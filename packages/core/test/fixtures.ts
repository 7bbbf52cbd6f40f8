import * as tf from '@tensorflow/tfjs';
import { selectBackend, SilentLogger, tensorData, TensorData, Trainer, type TrainerOptions } from '../src';
import { sgd } from '../src/transforms';

/** A small seeded classification problem: 3 Gaussian blobs in 4-D. */
export function blobs(n = 96, seed = 1): TensorData {
  const labels = tf.tensor1d(Array.from({ length: n }, (_, i) => i % 3), 'int32');
  const x = tf.tidy(() => {
    const centres = tf.tensor2d([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]]);
    return tf.add(tf.gather(centres, labels), tf.randomNormal([n, 4], 0, 0.5, 'float32', seed));
  });
  return tensorData(x, labels);
}

export function tinyMlp(seed = 1): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 8, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}

export function tinyTrainer(options: Partial<TrainerOptions> = {}): Trainer {
  return new Trainer({
    model: options.model ?? tinyMlp(),
    loss: 'softmaxCrossEntropy',
    optimizer: sgd({ lr: 0.1, momentum: 0.9 }),
    logger: new SilentLogger(),
    ...options,
  });
}

/** Call inside a describe(): its tests run on `backend` (cpu, the reference, by default). */
export function useBackend(backend = 'cpu'): void {
  before(async () => {
    tf.env().set('PROD', true);
    // selectBackend registers wasm and installs its training shim
    if (backend === 'wasm') await selectBackend('wasm', { log: false });
    await tf.setBackend(backend);
    await tf.ready();
  });
}
