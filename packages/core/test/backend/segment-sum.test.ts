import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useShimmedWasm } from './helpers';

/*
 * UnsortedSegmentSum in one pass (wasm-shim/segment-sum.ts), on cpu and wasm, against sums
 * written out in float64: repeated, negative and out-of-range ids, rows of several values,
 * int32 values; and an Embedding layer's gradient (gather's), the case it is for.
 */

const values = (n: number) => Array.from({ length: n }, (_, i) => Math.round(Math.sin(i + 1) * 1000) / 8);

/** The sums in float64, rows of `inner` values; ids outside [0, segments) dropped. */
function reference(x: number[], ids: number[], segments: number, inner: number): number[] {
  const out = new Array<number>(segments * inner).fill(0);
  ids.forEach((s, i) => {
    if (s < 0 || s >= segments) return;
    for (let j = 0; j < inner; j++) out[s * inner + j] += x[i * inner + j];
  });
  return out;
}

for (const backend of ['cpu', 'wasm']) {
  describe(`backend: UnsortedSegmentSum in one pass, on ${backend}`, function () {
    before(async () => {
      await useShimmedWasm();
      await tf.setBackend(backend);
    });
    after(() => tf.setBackend('cpu'));

    it('sums rows into their segments: repeats, dropped ids, int32 values', () => {
      const ids = [3, 0, 3, -1, 5, 1, 3, 9];
      const x = values(8 * 6);
      const got = tf.tidy(() => {
        const y = tf.unsortedSegmentSum(tf.tensor(x, [8, 2, 3]), tf.tensor1d(ids, 'int32'), 6);
        return { shape: y.shape, v: Array.from(y.dataSync()) };
      });
      expect(got.shape).to.deep.equal([6, 2, 3]);
      // Values are multiples of 1/8 below 2^13: every partial sum is exact in float32.
      expect(got.v).to.deep.equal(reference(x, ids, 6, 6));
      const ints = tf.tidy(() => {
        const y = tf.unsortedSegmentSum(tf.tensor1d([5, -2, 7, 1], 'int32'), tf.tensor1d([1, 1, 0, 1], 'int32'), 2);
        return { dtype: y.dtype, v: Array.from(y.dataSync()) };
      });
      expect(ints).to.deep.equal({ dtype: 'int32', v: [7, 4] });
    });

    it("an Embedding layer's gradient: each row gets the sum of its tokens' output gradients", () => {
      const tokens = [4, 1, 4, 0, 2, 4, 1, 7];
      const layer = tf.layers.embedding({ inputDim: 9, outputDim: 3, inputLength: 4 });
      const got = tf.tidy(() => {
        const out = layer.apply(tf.tensor2d(tokens, [2, 4], 'int32')) as tf.Tensor;
        const w = tf.tensor(values(24), out.shape);
        const table = layer.trainableWeights[0].read() as tf.Variable;
        const { grads } = tf.variableGrads(() => (layer.apply(tf.tensor2d(tokens, [2, 4], 'int32')) as tf.Tensor).mul(w).sum() as tf.Scalar, [table]);
        return Array.from(grads[table.name].dataSync());
      });
      expect(got).to.deep.equal(reference(values(24), tokens, 9, 3));
      layer.dispose();
    });
  });
}
