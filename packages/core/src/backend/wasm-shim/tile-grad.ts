import * as tf from '@tensorflow/tfjs';
import { Overrides } from './overrides';

/**
 * The gradient of tile: the sum of dy's copies. tfjs computes it with a slice and an add
 * per copy, so a tile of [128, 1] to [128, 256] (tfjs-layers' LayerNormalization tiles
 * its statistics and parameters this way) cost 256 slices and 256 adds per tile, on every
 * backend: 138 ms of a 162 ms training step of a small MLP with two LayerNormalizations on
 * wasm. Here dy is viewed with each axis split into (copy, original) and summed over the
 * copy axes: one reshape and one sum. The same sums up to the order of the additions.
 */
export function installTileGrad(o: Overrides): void {
  o.gradient({
    kernelName: 'Tile',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => ({
      x: () =>
        tf.tidy(() => {
          const reps = (attrs as { reps: number[] }).reps;
          const split = x.shape.flatMap((size, i) => [reps[i], size]);
          const copies = reps.map((_, i) => 2 * i).filter((axis) => split[axis] > 1);
          const grouped = tf.reshape(dy as tf.Tensor, split);
          return tf.reshape(copies.length ? tf.sum(grouped, copies) : grouped, x.shape);
        }),
    }),
  });
}
