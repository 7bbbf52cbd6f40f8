import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { onBackendOrSkip } from './helpers';

/*
 * Tile's gradient as one sum per tiled axis (wasm-shim/tile-grad.ts), on cpu, wasm and
 * webgpu where there is an adapter, against the copies of dy added up in float64.
 */

const weights = (n: number) => Array.from({ length: n }, (_, i) => Math.sin(i + 1));

/** d sum(tile(x, reps) * w) / dx in float64: each element gets the weights of all its copies. */
function reference(shape: number[], reps: number[]): number[] {
  const outShape = shape.map((d, i) => d * reps[i]);
  const n = outShape.reduce((p, d) => p * d, 1);
  const w = weights(n);
  const size = shape.reduce((p, d) => p * d, 1);
  const dx = new Array<number>(size).fill(0);
  for (let k = 0; k < n; k++) {
    let rest = k;
    let from = 0;
    let stride = 1;
    for (let d = outShape.length - 1; d >= 0; d--) {
      const at = rest % outShape[d];
      rest = Math.floor(rest / outShape[d]);
      from += (at % shape[d]) * stride;
      stride *= shape[d];
    }
    dx[from] += w[k];
  }
  return dx;
}

for (const backend of ['cpu', 'wasm', 'webgpu']) {
  describe(`backend: tile's gradient as one sum per tiled axis, on ${backend}`, function () {
    before(async function () {
      await onBackendOrSkip(this, backend, "tile's gradient on webgpu");
    });
    after(() => tf.setBackend('cpu'));

    for (const [shape, reps] of [
      [[128, 1], [1, 256]],
      [[1, 16], [8, 1]],
      [[2, 3, 4], [3, 1, 2]],
      [[5], [1]],
      [[2, 1, 3], [2, 4, 1]],
      // Every axis of a rank-4 tensor tiled (split in two at once, 8 axes: webgpu refused to reduce them).
      [[2, 3, 2, 3], [2, 2, 3, 2]],
    ] as Array<[number[], number[]]>) {
      it(`tile [${shape}] by [${reps}]: each element gets the sum of its copies' dy`, () => {
        const got = tf.tidy(() => {
          const x = tf.tensor(weights(shape.reduce((p, d) => p * d, 1)), shape);
          const y = tf.tile(x, reps);
          const w = tf.tensor(weights(y.size), y.shape);
          return Array.from(tf.grad((z: tf.Tensor) => tf.tile(z, reps).mul(w).sum())(x).dataSync());
        });
        const expected = reference(shape, reps);
        expect(got).to.have.length(expected.length);
        got.forEach((v, i) => expect(v, `element ${i}`).to.be.closeTo(expected[i], 1e-4));
      });
    }
  });
}
