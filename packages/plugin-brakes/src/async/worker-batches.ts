import * as tf from '@tensorflow/tfjs';
import { permutation } from '@tapfit/core';
import type { WorkerInit } from './protocol';

/**
 * Endless full batches from this worker's shard of the shared training set, reshuffled
 * every pass (seeded per worker). The caller disposes each batch.
 */
export function* shardBatches(init: WorkerInit): Generator<{ x: tf.Tensor; y: tf.Tensor }, never> {
  const { data, shard, batchSize } = init;
  const x = new Float32Array(data.x);
  const y = data.yDtype === 'int32' ? new Int32Array(data.y) : new Float32Array(data.y);
  const xSize = data.xShape.reduce((a, b) => a * b, 1);
  const ySize = data.yShape.reduce((a, b) => a * b, 1);
  const seed = init.seed * 1009 + init.index;
  for (let pass = 0; ; pass++) {
    const order = permutation(shard.length, seed, pass);
    for (let start = 0; start + batchSize <= shard.length; start += batchSize) {
      const xb = new Float32Array(batchSize * xSize);
      const yb = data.yDtype === 'int32' ? new Int32Array(batchSize * ySize) : new Float32Array(batchSize * ySize);
      for (let i = 0; i < batchSize; i++) {
        const j = shard[order[start + i]];
        xb.set(x.subarray(j * xSize, (j + 1) * xSize), i * xSize);
        yb.set(y.subarray(j * ySize, (j + 1) * ySize), i * ySize);
      }
      yield { x: tf.tensor(xb, [batchSize, ...data.xShape]), y: tf.tensor(yb, [batchSize, ...data.yShape], data.yDtype) };
    }
  }
}
