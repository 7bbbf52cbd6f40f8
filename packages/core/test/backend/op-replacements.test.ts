import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { onBackendOrSkip } from './helpers';

/*
 * tfjs ops fixed by replacing them (wasm-shim/op-replacements.ts), on cpu and wasm,
 * against plain forms and a float64 oracle: softmax and logSoftmax on any axis, divNoNan
 * with a finite gradient where the divisor is 0, matrix norms with the axes in any order,
 * batchNorm without scale or offset under a gradient.
 */

const values = (n: number, phase = 1) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.9 + phase) * 2);

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  expect(actual.length, what).to.equal(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Number.isFinite(actual[i]), `${what}: element ${i} is ${actual[i]}`).to.equal(true);
    expect(Math.abs(actual[i] - expected[i]), `${what}: element ${i}: ${actual[i]} against ${expected[i]}`).to.be.below(tolerance);
  }
}

/** Gradient of sum(f(x) * w) with fixed weights. */
const gradOf = (f: (x: tf.Tensor) => tf.Tensor, x: tf.Tensor) =>
  tf.tidy(() => {
    const w = tf.tensor(values(f(x).size, 2.3), f(x).shape);
    return tf.grad((z: tf.Tensor) => f(z).mul(w).sum())(x).dataSync();
  });

for (const backend of ['cpu', 'wasm', 'webgpu']) {
  describe(`backend: tfjs ops fixed by replacement, on ${backend}`, function () {
    before(async function () {
      await onBackendOrSkip(this, backend, 'on webgpu');
    });
    after(() => tf.setBackend('cpu'));

    it('softmax and logSoftmax along any axis (tfjs: the last only) equal exp(x - logSumExp) and its gradient; a Softmax(axis = 1) layer runs', () => {
      const x = tf.tensor(values(24), [2, 3, 4]);
      for (const axis of [0, 1, 2, -1, -2, -3]) {
        const plainLog = (z: tf.Tensor) => tf.sub(z, tf.logSumExp(z, axis, true));
        const cases: Array<[string, (z: tf.Tensor) => tf.Tensor, (z: tf.Tensor) => tf.Tensor]> = [
          ['softmax', (z) => tf.softmax(z, axis), (z) => tf.exp(plainLog(z))],
          ['logSoftmax', (z) => tf.logSoftmax(z, axis), plainLog],
        ];
        for (const [name, op, plain] of cases) {
          close(tf.tidy(() => op(x).dataSync()), tf.tidy(() => plain(x).dataSync()), 1e-6, `${name} axis ${axis}`);
          close(gradOf(op, x), gradOf(plain, x), 1e-5, `${name} axis ${axis}: gradient`);
        }
      }
      expect(() => tf.softmax(x, 3)).to.throw();
      const model = tf.sequential({ layers: [tf.layers.softmax({ inputShape: [3, 4], axis: 1 })] });
      const y = model.predict(x) as tf.Tensor;
      close(tf.tidy(() => tf.sum(y, 1).dataSync()), new Array(8).fill(1), 1e-6, 'Softmax layer: sums along axis 1');
      tf.dispose([x, y]);
      model.dispose();
    });

    it('divNoNan: the same values (0 where the divisor is 0, with broadcasting), and a gradient that is 0 there instead of NaN', () => {
      const a = tf.tensor2d([[1, -2, 3], [4, 5, -6]]);
      const b = tf.tensor1d([0, 2, -0.5]);
      close(tf.tidy(() => tf.divNoNan(a, b).dataSync()), [0, -1, -6, 0, 2.5, 12], 1e-6, 'values');
      const [ga, gb] = tf.tidy(() => tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.divNoNan(p, q).sum())([a, b]).map((g) => Array.from(g.dataSync())));
      // d/da = 1/b, d/db = -sum over rows of a / b^2; both 0 where b = 0.
      close(ga, [0, 0.5, -2, 0, 0.5, -2], 1e-6, 'd a');
      close(gb, [0, -(-2 + 5) / 4, -(3 - 6) / 0.25], 1e-5, 'd b');
      tf.dispose([a, b]);
    });

    it('batchNorm without a scale or an offset can be differentiated (tfjs threw) and matches the plain form', () => {
      for (const shape of [[4, 3], [2, 3, 3, 2]]) {
        const x = tf.tensor(values(shape.reduce((a, b) => a * b, 1), 0.7), shape);
        const axes = shape.slice(0, -1).map((_, i) => i);
        const w = tf.tensor(values(x.size, 1.9), shape);
        for (const [label, offset, scale] of [['neither', undefined, undefined], ['scale only', undefined, [1.5, -0.5, 2]], ['offset only', [0.1, 0.2, -0.3], undefined]] as Array<[string, number[] | undefined, number[] | undefined]>) {
          const c = shape[shape.length - 1];
          const [o, sc] = [offset && tf.tensor1d(offset.slice(0, c)), scale && tf.tensor1d(scale.slice(0, c))];
          const fused = (z: tf.Tensor) => { const { mean, variance } = tf.moments(z, axes); return tf.sum(tf.mul(w, tf.batchNorm(z, mean, variance, o, sc, 1e-3))); };
          const plain = (z: tf.Tensor) => {
            const { mean, variance } = tf.moments(z, axes);
            const normed = tf.div(tf.sub(z, mean), tf.sqrt(tf.add(variance, 1e-3)));
            return tf.sum(tf.mul(w, tf.add(tf.mul(normed, sc ?? 1), o ?? 0)));
          };
          close(tf.tidy(() => tf.grad(fused)(x).dataSync()), tf.tidy(() => tf.grad(plain)(x).dataSync()), 1e-5, `rank ${shape.length}, ${label}`);
          tf.dispose([o, sc].filter((t): t is tf.Tensor1D => t != null));
        }
        tf.dispose([x, w]);
      }
    });

    it("batchNorm with statistics shaped to broadcast ([1, C, 1, 1], channels first): the plain form's values (tfjs's cpu and wasm kernels were 1.26 off) and gradients for x, scale and offset (tfjs threw)", () => {
      const x = tf.tensor4d(values(2 * 3 * 4 * 2, 0.3), [2, 3, 4, 2]);
      const scale = tf.tensor4d([1.5, -0.5, 2], [1, 3, 1, 1]);
      const offset = tf.tensor4d([0.1, 0.2, -0.3], [1, 3, 1, 1]);
      const w = tf.tensor(values(48, 1.1), [2, 3, 4, 2]);
      const fused = (z: tf.Tensor, sc: tf.Tensor, of: tf.Tensor) => { const { mean, variance } = tf.moments(z, [0, 2, 3], true); return tf.sum(tf.mul(w, tf.batchNorm(z, mean, variance, of, sc, 1e-3))); };
      const plain = (z: tf.Tensor, sc: tf.Tensor, of: tf.Tensor) => {
        const { mean, variance } = tf.moments(z, [0, 2, 3], true);
        return tf.sum(tf.mul(w, tf.add(tf.mul(tf.div(tf.sub(z, mean), tf.sqrt(tf.add(variance, 1e-3))), sc), of)));
      };
      const dataIds = tf.backend().numDataIds();
      close(tf.tidy(() => fused(x, scale, offset).dataSync()), tf.tidy(() => plain(x, scale, offset).dataSync()), 1e-5, 'value');
      expect(tf.backend().numDataIds(), 'backend data left behind').to.equal(dataIds);
      const [got, want] = [fused, plain].map((f) => tf.tidy(() => tf.grads(f)([x, scale, offset]).map((g) => Array.from(g.dataSync()))));
      got.forEach((g, k) => close(g, want[k], 1e-5, ['x', 'scale', 'offset'][k]));
      tf.dispose([x, scale, offset, w]);
    });

    it("depthwiseConv2d and conv2d with 'NCHW' equal the NHWC op between transposes, values and input and filter gradients (tfjs: NaN on cpu, wrong on wasm, gradients ignoring the format; conv2d threw on wasm)", () => {
      const x = tf.tensor4d(values(2 * 3 * 5 * 5, 0.2), [2, 3, 5, 5]);
      const toNhwc = (t: tf.Tensor) => tf.transpose(t, [0, 2, 3, 1]);
      const toNchw = (t: tf.Tensor) => tf.transpose(t, [0, 3, 1, 2]);
      const cases: Array<[string, tf.Tensor4D, (z: tf.Tensor, f: tf.Tensor) => tf.Tensor, (z: tf.Tensor, f: tf.Tensor) => tf.Tensor]> = [
        ['depthwise, stride 2', tf.tensor4d(values(27, 1.3), [3, 3, 3, 1]), (z, f) => tf.depthwiseConv2d(z as tf.Tensor4D, f as tf.Tensor4D, 2, 'same', 'NCHW'), (z, f) => toNchw(tf.depthwiseConv2d(toNhwc(z) as tf.Tensor4D, f as tf.Tensor4D, 2, 'same'))],
        ['depthwise, multiplier 2, dilation 2', tf.tensor4d(values(54, 2.1), [3, 3, 3, 2]), (z, f) => tf.depthwiseConv2d(z as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid', 'NCHW', 2), (z, f) => toNchw(tf.depthwiseConv2d(toNhwc(z) as tf.Tensor4D, f as tf.Tensor4D, 1, 'valid', 'NHWC', 2))],
        ['conv2d', tf.tensor4d(values(54, 0.9), [3, 3, 3, 2]), (z, f) => tf.conv2d(z as tf.Tensor4D, f as tf.Tensor4D, 1, 'same', 'NCHW'), (z, f) => toNchw(tf.conv2d(toNhwc(z) as tf.Tensor4D, f as tf.Tensor4D, 1, 'same'))],
      ];
      for (const [name, filter, op, plain] of cases) {
        const w = tf.tidy(() => tf.tensor(values(plain(x, filter).size, 0.6), plain(x, filter).shape));
        close(tf.tidy(() => op(x, filter).dataSync()), tf.tidy(() => plain(x, filter).dataSync()), 1e-5, `${name}: value`);
        const [got, want] = [op, plain].map((f) => tf.tidy(() => tf.grads((z: tf.Tensor, q: tf.Tensor) => tf.sum(tf.mul(f(z, q), w)))([x, filter]).map((g) => Array.from(g.dataSync()))));
        close(got[0], want[0], 1e-5, `${name}: input gradient`);
        close(got[1], want[1], 1e-5, `${name}: filter gradient`);
        tf.dispose([filter, w]);
      }
      x.dispose();
    });

    it("chained tensor methods (x.softmax(1), x.divNoNan(b), x.norm(1, [2, 1]), x.batchNorm(...), x.conv2d(..., 'NCHW'), ...) are the fixed ops: the same values and gradients as tf.*", () => {
      const x = tf.tensor(values(2 * 3 * 4 * 4, 0.7), [2, 3, 4, 4]);
      const b = tf.tensor(values(4, 0.2).map((v, i) => (i === 1 ? 0 : v)), [4]);
      const [mean, variance, scale] = [[0.1, -0.2, 0.3, 0], [1, 2, 0.5, 1.5], [2, 1, -1, 0.5]].map((v) => tf.tensor1d(v));
      const filter = tf.tensor4d(values(3 * 3 * 3 * 2, 1.1), [3, 3, 3, 2]);
      const depthwise = tf.tensor4d(values(3 * 3 * 3, 1.7), [3, 3, 3, 1]);
      const cases: Array<[string, (z: tf.Tensor) => tf.Tensor, (z: tf.Tensor) => tf.Tensor]> = [
        ['softmax(1)', (z) => z.softmax(1), (z) => tf.softmax(z, 1)],
        ['logSoftmax(-3)', (z) => z.logSoftmax(-3), (z) => tf.logSoftmax(z, -3)],
        ['divNoNan(b), b with a 0', (z) => z.divNoNan(b), (z) => tf.divNoNan(z, b)],
        ['norm(1, [2, 1])', (z) => z.norm(1, [2, 1]), (z) => tf.norm(z, 1, [2, 1])],
        ['batchNorm without an offset', (z) => z.batchNorm(mean, variance, undefined, scale, 1e-3), (z) => tf.batchNorm(z, mean, variance, undefined, scale, 1e-3)],
        ["conv2d 'NCHW'", (z) => (z as tf.Tensor4D).conv2d(filter, 1, 'same', 'NCHW'), (z) => tf.conv2d(z as tf.Tensor4D, filter, 1, 'same', 'NCHW')],
        ["depthwiseConv2d 'NCHW'", (z) => (z as tf.Tensor4D).depthwiseConv2d(depthwise, 1, 'same', 'NCHW'), (z) => tf.depthwiseConv2d(z as tf.Tensor4D, depthwise, 1, 'same', 'NCHW')],
      ];
      for (const [name, chained, op] of cases) {
        close(tf.tidy(() => chained(x).dataSync()), tf.tidy(() => op(x).dataSync()), 1e-6, `${name}: value`);
        close(gradOf(chained, x), gradOf(op, x), 1e-6, `${name}: gradient`);
      }
      const disposed = tf.tensor1d([1, 2]);
      disposed.dispose();
      expect(() => disposed.softmax()).to.throw(/disposed/);
      tf.dispose([x, b, mean, variance, scale, filter, depthwise]);
    });

    it('matrix norms (p = 1, Infinity, -Infinity) over two axes in either order or negative equal the float64 definition; keepDims keeps both axes', () => {
      const shape = [2, 3, 4];
      const v = values(24, 0.4);
      const x = tf.tensor(v, shape);
      const at = (i: number, j: number, k: number) => Math.abs(v[(i * 3 + j) * 4 + k]);
      // p = 1: the largest sum over the first axis (rows), taken over the second (columns); +-Infinity: sums over the second, max (min) over the first.
      const oracle = (ord: number, rows: number, cols: number): number[] => {
        const other = [0, 1, 2].find((d) => d !== rows && d !== cols)!;
        const [summed, reduced] = ord === 1 ? [rows, cols] : [cols, rows];
        return Array.from({ length: shape[other] }, (_, o) => {
          const sums = Array.from({ length: shape[reduced] }, (_, r) => {
            let s = 0;
            for (let t = 0; t < shape[summed]; t++) {
              const idx = [0, 0, 0];
              [idx[other], idx[reduced], idx[summed]] = [o, r, t];
              s += at(idx[0], idx[1], idx[2]);
            }
            return s;
          });
          return ord === -Infinity ? Math.min(...sums) : Math.max(...sums);
        });
      };
      for (const ord of [1, Infinity, -Infinity]) {
        for (const axis of [[1, 2], [2, 1], [-1, -2], [0, 2], [2, 0]]) {
          const [rows, cols] = axis.map((a) => (a < 0 ? a + 3 : a));
          close(tf.tidy(() => tf.norm(x, ord, axis).dataSync()), oracle(ord, rows, cols), 1e-5, `ord ${ord} axis ${axis}`);
          expect(tf.tidy(() => tf.norm(x, ord, axis, true).shape)).to.deep.equal(shape.map((s, d) => (d === rows || d === cols ? 1 : s)));
        }
      }
      close(tf.tidy(() => tf.norm(x, 'fro', [0, 2]).dataSync()), [0, 1, 2].map((j) => Math.sqrt([0, 1].reduce((s, i) => s + [0, 1, 2, 3].reduce((t, k) => t + at(i, j, k) ** 2, 0), 0))), 1e-5, 'fro, unchanged');
      x.dispose();
    });
  });
}
