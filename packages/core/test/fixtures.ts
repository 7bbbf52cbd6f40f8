import * as tf from '@tensorflow/tfjs';
import { selectBackend, SilentLogger, TensorData, Trainer, type TrainerOptions } from '../src';
import { sgd } from '../src/transforms';
import { blobData, tinyModel } from '../src/testing';

/** A small seeded classification problem and an MLP for it (the testing kit's). */
export const blobs = (n = 96, seed = 1): TensorData => blobData(n, { seed });
export const tinyMlp = (seed = 1): tf.Sequential => tinyModel({ seed });

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
