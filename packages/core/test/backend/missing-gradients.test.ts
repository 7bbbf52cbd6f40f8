import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useShimmedWasm } from './helpers';

/*
 * The gradients tfjs lacks (wasm-shim/missing-gradients.ts), on cpu and wasm, against
 * oracles that do not use them: a selection op's gradient is its adjoint, read off by
 * running the forward on a tensor of flat positions; comparisons give zeros.
 */

const weights = (n: number) => Array.from({ length: n }, (_, i) => Math.sin(i + 1));

/** d sum(op(x) * w) / dx through the tape. */
function taped(op: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor): number[] {
  return tf.tidy(() => {
    const w = tf.tensor(weights(op(x).size), op(x).shape);
    return Array.from(tf.grad((z: tf.Tensor) => op(z).mul(w).sum())(x).dataSync());
  });
}

/** The same for an op that only moves values: each output adds its weight to the input it came from. */
function adjoint(op: (x: tf.Tensor) => tf.Tensor, shape: number[]): number[] {
  const size = shape.reduce((a, b) => a * b, 1);
  const from = tf.tidy(() => Array.from(op(tf.range(0, size).reshape(shape)).dataSync()));
  const expected = new Array<number>(size).fill(0);
  weights(from.length).forEach((w, i) => (expected[from[i]] += w));
  return expected;
}

const close = (a: number[], b: number[]) => {
  expect(a).to.have.length(b.length);
  a.forEach((v, i) => expect(v, `element ${i}`).to.be.closeTo(b[i], 1e-5));
};

for (const backend of ['cpu', 'wasm']) {
  describe(`backend: gradients tfjs lacks, on ${backend}`, function () {
    before(async () => {
      await useShimmedWasm(); // installs the gradient fixes (on every backend)
      await tf.setBackend(backend);
    });
    after(() => tf.setBackend('cpu'));

    it('comparisons and logical ops pass zeros: tf.where on a comparison of x, and a ThresholdedReLU layer, train', () => {
      const xs = [0.3, -1.7, 2.2, -0.4, 0.15, 5.5];
      const x = tf.tensor1d(xs);
      const op = (z: tf.Tensor) => tf.where(tf.logicalAnd(tf.greater(z, 0), tf.notEqual(z, 100)), z.mul(3), z.square());
      close(taped(op, x), xs.map((v, i) => weights(6)[i] * (v > 0 ? 3 : 2 * v)));
      for (const compare of [tf.less, tf.lessEqual, tf.equal]) {
        close(taped((z) => tf.where(compare(z, 0.15), z.mul(2), z), x), xs.map((v, i) => weights(6)[i] * (compare === tf.less ? (v < 0.15 ? 2 : 1) : compare === tf.lessEqual ? (v <= 0.15 ? 2 : 1) : v === 0.15 ? 2 : 1)));
      }
      close(taped((z) => tf.where(tf.logicalNot(tf.logicalOr(tf.greater(z, 1), tf.logicalXor(tf.less(z, 0), tf.less(z, -1)))), z, tf.zerosLike(z)), x), xs.map((v, i) => (!(v > 1 || (v < 0) !== (v < -1)) ? weights(6)[i] : 0)));
      const layer = tf.layers.thresholdedReLU({ theta: 0.2 });
      close(taped((z) => layer.apply(z) as tf.Tensor, x), xs.map((v, i) => (v > 0.2 ? weights(6)[i] : 0)));
      x.dispose();
    });

    it('StridedSlice: the adjoint of the slice, for strides, negative strides and every mask', () => {
      const shape = [4, 5, 3];
      const x = tf.tensor(weights(60).map((v) => v * 2), shape);
      const cases: Array<(z: tf.Tensor) => tf.Tensor> = [
        (z) => tf.stridedSlice(z, [0, 0, 0], [4, 5, 3], [2, 2, 1]),
        (z) => tf.stridedSlice(z, [3, 4, 2], [0, 0, 0], [-1, -2, -1]),
        (z) => tf.stridedSlice(z, [1, 1, 0], [0, 4, 0], [1, 1, 2], 0b101, 0b101),
        (z) => tf.stridedSlice(z, [1, 0, 2], [2, 5, 3], [1, 3, 1], 0, 0, 0, 0, 0b101),
        (z) => tf.stridedSlice(z, [0, 1], [0, 4], [1, 2], 0, 0, 0b01),
        (z) => tf.stridedSlice(z, [0, 0, 1, 0], [4, 0, 5, 3], [1, 1, 2, 1], 0, 0, 0, 0b10),
      ];
      for (const op of cases) close(taped(op, x), adjoint(op, shape));
      x.dispose();
    });

    it('GatherNd: dy scattered back, summed where indices repeat; ScatterNd: the updates get dy at their positions', () => {
      const shape = [4, 3];
      const x = tf.tensor(weights(12), shape);
      const indices = tf.tensor2d([[1, 2], [3, 0], [1, 2], [0, 1]], undefined, 'int32');
      const gather = (z: tf.Tensor) => tf.gatherND(z, indices);
      close(taped(gather, x), adjoint(gather, shape));
      const rows = tf.tensor2d([[2], [0], [2]], undefined, 'int32');
      const byRow = (z: tf.Tensor) => tf.gatherND(z, rows);
      close(taped(byRow, x), adjoint(byRow, shape));
      const updates = tf.tensor1d([0.5, -1, 2]);
      const scatter = (u: tf.Tensor) => tf.scatterND(tf.tensor2d([[1], [4], [2]], undefined, 'int32'), u, [6]);
      const w = weights(6);
      close(taped(scatter, updates), [w[1], w[4], w[2]]);
      tf.dispose([x, indices, rows, updates]);
    });

    it("TopK: the values' dy goes back where they were taken from; DepthToSpace: the inverse permutation", () => {
      const x = tf.tensor2d([[3, 1, 4, 1.5, 5], [9, 2, 6, 5, 3], [-1, -2, -3, -4, -5]]);
      const top = (z: tf.Tensor) => tf.topk(z, 2).values;
      const picked = tf.tidy(() => Array.from(tf.topk(x, 2).indices.dataSync()));
      const expected = new Array<number>(15).fill(0);
      weights(6).forEach((w, i) => (expected[Math.floor(i / 2) * 5 + picked[i]] += w));
      close(taped(top, x), expected);
      const shape = [2, 2, 3, 8];
      const toSpace = (z: tf.Tensor) => tf.depthToSpace(z as tf.Tensor4D, 2);
      const image = tf.tensor(weights(96), shape);
      close(taped(toSpace, image), adjoint(toSpace, shape));
      tf.dispose([x, image]);
    });

    it('TensorScatterUpdate: the tensor gets dy except where it was overwritten, the updates get dy there', () => {
      const t = tf.tensor(weights(8), [4, 2]);
      const updates = tf.tensor2d([[9, 9], [7, 7]]);
      const indices = tf.tensor2d([[3], [1]], undefined, 'int32');
      const w = weights(8);
      close(taped((z) => tf.tensorScatterUpdate(z, indices, updates), t), w.map((v, i) => (i === 2 || i === 3 || i === 6 || i === 7 ? 0 : v)));
      close(taped((u) => tf.tensorScatterUpdate(t, indices, u), updates), [w[6], w[7], w[2], w[3]]);
      tf.dispose([t, updates, indices]);
    });
  });
}
