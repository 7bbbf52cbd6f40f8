import * as tf from '@tensorflow/tfjs';
import { Overrides } from './overrides';

/**
 * The gradient of tile: the sum of dy's copies. tfjs computes it with a slice and an add
 * per copy, so a tile of [128, 1] to [128, 256] (tfjs-layers' LayerNormalization tiles
 * its statistics and parameters this way) cost 256 slices and 256 adds per tile, on every
 * backend: 138 ms of a 162 ms training step of a small MLP with two LayerNormalizations on
 * wasm. Here, for each tiled axis, dy is viewed as [before, copies, original, after] and
 * summed over the copies: one reshape and one sum per tiled axis, at most 4 dimensions
 * (webgpu reduces no more than 6: one view of all axes split in two failed there from
 * rank 4). The same sums up to the order of the additions.
 */
export function installTileGrad(o: Overrides): void {
  o.gradient({
    kernelName: 'Tile',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => ({
      x: () =>
        tf.tidy(() => {
          const reps = (attrs as { reps: number[] }).reps;
          const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);
          let g = dy as tf.Tensor;
          const shape = [...g.shape];
          reps.forEach((copies, axis) => {
            if (copies === 1) return;
            g = tf.sum(tf.reshape(g, [size(shape.slice(0, axis)), copies, x.shape[axis], size(shape.slice(axis + 1))]), 1);
            shape[axis] = x.shape[axis];
          });
          return tf.reshape(g, x.shape);
        }),
    }),
  });
}
