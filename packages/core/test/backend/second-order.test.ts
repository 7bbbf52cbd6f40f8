import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { onBackendOrSkip } from './helpers';

/*
 * Gradients of gradients (tape-order.ts, wasm-shim/second-order-gradients.ts), on cpu and
 * wasm: closed forms in float64 for ops whose gradient reads their own output, and for
 * gradient penalties through the layers whose gradient kernels had no gradient, autodiff
 * of the same function written with other ops.
 */

const values = (n: number, phase = 1, scale = 1) => Array.from({ length: n }, (_, i) => Math.sin(i * 1.3 + phase) * scale);

function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  expect(actual.length, what).to.equal(expected.length);
  const scale = Math.max(1e-3, ...Array.from(expected, Math.abs));
  for (let i = 0; i < expected.length; i++) {
    expect(Number.isFinite(actual[i]), `${what}: element ${i} is ${actual[i]}`).to.equal(true);
    expect(Math.abs(actual[i] - expected[i]) / scale, `${what}: element ${i}: ${actual[i]} against ${expected[i]}`).to.be.below(tolerance);
  }
}

/** d/d params of sum((d f(x, params) / dx)^2): a gradient penalty. */
function penaltyGrads(f: (x: tf.Tensor, ...params: tf.Tensor[]) => tf.Tensor, x: tf.Tensor, params: tf.Tensor[]): Float32Array[] {
  return tf.tidy(() => {
    const grads = tf.grads((...ps: tf.Tensor[]) => tf.sum(tf.square(tf.grad((z: tf.Tensor) => tf.sum(f(z, ...ps)))(x))))(params);
    return grads.map((g) => g.dataSync() as Float32Array);
  });
}

for (const backend of ['cpu', 'wasm', 'webgpu']) {
  describe(`backend: gradients of gradients, on ${backend}`, function () {
    before(async function () {
      await onBackendOrSkip(this, backend, 'on webgpu');
    });
    after(() => tf.setBackend('cpu'));

    it('through ops whose gradient reads their output (tanh, sigmoid, exp, softplus): the float64 second derivative (tfjs threw)', () => {
      const xs = [1.1, -0.4, 0.3];
      const x = tf.tensor1d([1, -0.5, 0.2]);
      const b = tf.tensor1d([0.1, 0.1, 0.1]);
      const sig = (v: number) => 1 / (1 + Math.exp(-v));
      const cases: Array<[string, (t: tf.Tensor) => tf.Tensor, (v: number) => number]> = [
        ['tanh', tf.tanh, (v) => -2 * Math.tanh(v) * (1 - Math.tanh(v) ** 2)],
        ['sigmoid', tf.sigmoid, (v) => sig(v) * (1 - sig(v)) * (1 - 2 * sig(v))],
        ['exp', tf.exp, Math.exp],
        ['softplus', tf.softplus, (v) => sig(v) * (1 - sig(v))],
      ];
      for (const [name, op, second] of cases) {
        // d/db of sum(op'(x + b)) = op''(x + b).
        const g = tf.tidy(() => tf.grad((bb: tf.Tensor) => tf.sum(tf.grad((z: tf.Tensor) => tf.sum(op(tf.add(z, bb))))(x)))(b).dataSync());
        close(g, xs.map((v) => second(v)), 1e-5, name);
      }
      tf.dispose([x, b]);
    });

    it("a layers model's gradient penalty reaches the first layer's bias through tanh (tfjs left it out)", () => {
      const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 4, activation: 'tanh', kernelInitializer: 'ones' }), tf.layers.dense({ units: 1, kernelInitializer: 'ones' })] });
      model.setWeights([tf.tensor2d(values(12, 0.5, 0.7), [3, 4]), tf.tensor1d(values(4, 2, 0.3)), tf.tensor2d(values(4, 3), [4, 1]), tf.zeros([1])]);
      const x = tf.tensor2d(values(6, 1.5), [2, 3]);
      const [W1, b1, W2] = model.getWeights();
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(tf.grad((z: tf.Tensor) => tf.sum(model.apply(z) as tf.Tensor))(x))), vars);
      expect(Object.keys(grads)).to.include(vars[1].name);
      const plain = penaltyGrads((z, w1, bias, w2) => tf.matMul(tf.tanh(tf.add(tf.matMul(z as tf.Tensor2D, w1 as tf.Tensor2D), bias)), w2 as tf.Tensor2D), x, [W1, b1, W2]);
      close(grads[vars[1].name].dataSync(), plain[1], 1e-5, 'bias');
      close(grads[vars[0].name].dataSync(), plain[0], 1e-5, 'kernel');
      tf.dispose([x, ...Object.values(grads)]);
      model.dispose();
    });

    it('gradient penalties through elu, depthwise convolution, max pooling and average pooling equal those of plain forms', () => {
      const x = tf.tensor4d(values(2 * 6 * 6 * 2, 0.2), [2, 6, 6, 2]);
      const K = tf.tensor4d(values(3 * 3 * 2 * 2, 1.9, 0.5), [3, 3, 2, 2]);
      const D = tf.tensor4d(values(3 * 3 * 2 * 1, 2.7, 0.5), [3, 3, 2, 1]);
      const w = (n: number) => tf.tensor1d(values(n, 0.8));
      const perChannel = (z: tf.Tensor4D, filter: tf.Tensor4D) =>
        tf.concat(tf.split(z, 2, 3).map((c, i) => tf.conv2d(c as tf.Tensor4D, tf.slice(filter, [0, 0, i, 0], [3, 3, 1, 1]) as tf.Tensor4D, 1, 'same')), 3);
      const flat = (t: tf.Tensor) => tf.reshape(t, [-1]);
      const cases: Array<[string, (z: tf.Tensor, k: tf.Tensor) => tf.Tensor, (z: tf.Tensor, k: tf.Tensor) => tf.Tensor, tf.Tensor]> = [
        ['elu', (z, k) => tf.elu(tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same')), (z, k) => { const c = tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'); return tf.where(tf.greater(c, 0), c, tf.sub(tf.exp(c), 1)); }, K],
        ['depthwise', (z, k) => tf.depthwiseConv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), (z, k) => perChannel(z as tf.Tensor4D, k as tf.Tensor4D), D],
        ['max pool 2x2', (z, k) => tf.maxPool(tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), 2, 2, 'valid'), (z, k) => tf.max(tf.reshape(tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), [2, 3, 2, 3, 2, 2]), [2, 4]), K],
        ['average pool 2x2', (z, k) => tf.avgPool(tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), 2, 2, 'valid'), (z, k) => tf.mean(tf.reshape(tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), [2, 3, 2, 3, 2, 2]), [2, 4]), K],
      ];
      for (const [name, op, plain, filter] of cases) {
        const n = tf.tidy(() => op(x, filter).size);
        const weights = w(n);
        const [got, want] = [op, plain].map((g) => penaltyGrads((z, k, v) => tf.mul(flat(g(z, k)), v), x, [filter, weights]));
        close(got[0], want[0], 1e-4, `${name}: filter`);
        close(got[1], want[1], 1e-4, `${name}: weights`);
        weights.dispose();
      }
      tf.dispose([x, K, D]);
    });

    it("average pooling with 'same' padding (border windows): the penalty's gradient equals that of window sums over the real counts", () => {
      const x = tf.tensor4d(values(7 * 7 * 2, 0.6), [1, 7, 7, 2]);
      const K = tf.tensor4d(values(3 * 3 * 2 * 2, 1.1, 0.5), [3, 3, 2, 2]);
      // Each 3x3 window at stride 3 over 7: rows/columns 0-2, 3-5, 6 (and 'same' pads one before): real counts from the padding.
      const counts = tf.tidy(() => tf.depthwiseConv2d(tf.ones([1, 7, 7, 2]) as tf.Tensor4D, tf.ones([3, 3, 2, 1]) as tf.Tensor4D, 3, 'same'));
      const sums = (c: tf.Tensor4D) => tf.concat(tf.split(c, 2, 3).map((ch) => tf.conv2d(ch as tf.Tensor4D, tf.ones([3, 3, 1, 1]) as tf.Tensor4D, 3, 'same')), 3);
      const conv = (z: tf.Tensor, k: tf.Tensor) => tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same');
      const weights = tf.tensor1d(values(18, 0.3));
      const got = penaltyGrads((z, k, v) => tf.mul(tf.reshape(tf.avgPool(conv(z, k), 3, 3, 'same'), [-1]), v), x, [K, weights]);
      const want = penaltyGrads((z, k, v) => tf.mul(tf.reshape(tf.div(sums(conv(z, k)), counts), [-1]), v), x, [K, weights]);
      close(got[0], want[0], 1e-4, 'filter');
      close(got[1], want[1], 1e-4, 'weights');
      tf.dispose([x, K, counts, weights]);
    });

    it('through a weight update (MAML): the gradients of 2-D, depthwise and 3-D filter gradients equal those of plain forms', () => {
      const x2 = tf.tensor4d(values(2 * 5 * 5 * 2, 0.3), [2, 5, 5, 2]);
      const x3 = tf.tensor5d(values(1 * 4 * 4 * 3 * 2, 0.9), [1, 4, 4, 3, 2]);
      const perChannel = (z: tf.Tensor4D, filter: tf.Tensor4D, stride: number) =>
        tf.concat(tf.split(z, 2, 3).map((c, i) => tf.conv2d(c as tf.Tensor4D, tf.slice(filter, [0, 0, i, 0], [3, 3, 1, 1]) as tf.Tensor4D, stride, 'same')), 3);
      // conv3d's plain form: a sum of conv2d over the depth taps (stride 1, 'valid' in depth).
      const conv3dPlain = (z: tf.Tensor5D, k: tf.Tensor5D) => {
        const [kd] = k.shape;
        const depth = z.shape[1] - kd + 1;
        return tf.stack(Array.from({ length: depth }, (_, d) => tf.addN(Array.from({ length: kd }, (_, t) => tf.conv2d(tf.squeeze(tf.slice(z, [0, d + t, 0, 0, 0], [-1, 1, -1, -1, -1]), [1]) as tf.Tensor4D, tf.squeeze(tf.slice(k, [t, 0, 0, 0, 0], [1, -1, -1, -1, -1]), [0]) as tf.Tensor4D, 1, 'same')))), 1);
      };
      const cases: Array<[string, tf.Tensor, number[], (z: tf.Tensor, k: tf.Tensor) => tf.Tensor, (z: tf.Tensor, k: tf.Tensor) => tf.Tensor]> = [
        // conv2d's plain form has no convolution: strided slices of the padded input (the patches) times the filter.
        ['conv2d, stride 2', x2, [3, 3, 2, 3], (z, k) => tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 2, 'same'), (z, k) => {
          const padded = tf.pad(z, [[0, 0], [1, 1], [1, 1], [0, 0]]);
          const taps = [0, 1, 2].flatMap((kh) => [0, 1, 2].map((kw) => tf.stridedSlice(padded, [0, kh, kw, 0], [2, kh + 5, kw + 5, 2], [1, 2, 2, 1])));
          return tf.reshape(tf.matMul(tf.reshape(tf.concat(taps, 3), [-1, 18]), tf.reshape(k, [18, 3])), [2, 3, 3, 3]);
        }],
        ['depthwise', x2, [3, 3, 2, 1], (z, k) => tf.depthwiseConv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same'), (z, k) => perChannel(z as tf.Tensor4D, k as tf.Tensor4D, 1)],
        ['conv3d', x3, [2, 3, 3, 2, 2], (z, k) => tf.conv3d(z as tf.Tensor5D, k as tf.Tensor5D, 1, 'valid'), (z, k) => tf.slice(conv3dPlain(z as tf.Tensor5D, k as tf.Tensor5D), [0, 0, 1, 1, 0], [-1, -1, 2, 1, -1])],
      ];
      // depthwise and conv3d are checked against conv2d forms, whose filter gradient's gradient the first case checks.
      for (const [name, x, kShape, op, plain] of cases) {
        const k = tf.tensor(values(kShape.reduce((a, b) => a * b, 1), 1.3, 0.4), kShape);
        // The loss after one inner step k - 0.1 dL/dk, differentiated towards k (the inner loss a tanh of the convolution).
        const outer = (conv: (z: tf.Tensor, kk: tf.Tensor) => tf.Tensor) => (kk: tf.Tensor) => {
          const loss = (q: tf.Tensor) => tf.sum(tf.tanh(conv(x, q)));
          return loss(tf.sub(kk, tf.mul(0.1, tf.grad(loss)(kk))));
        };
        const [got, want] = [op, plain].map((conv) => tf.tidy(() => tf.grad(outer(conv))(k).dataSync()));
        close(got, want, 1e-4, name);
        k.dispose();
      }
      tf.dispose([x2, x3]);
    });

    it('gradient penalties through upsampling (nearest and bilinear resizes) and 3-D pooling equal those of plain forms', () => {
      const x = tf.tensor4d(values(2 * 4 * 3 * 2, 0.5), [2, 4, 3, 2]);
      const K = tf.tensor4d(values(3 * 3 * 2 * 2, 1.7, 0.5), [3, 3, 2, 2]);
      const conv = (z: tf.Tensor, k: tf.Tensor) => tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same');
      // Bilinear resize by 2 (no corner alignment, no half-pixel centers): source = target / 2, as interpolation matrices.
      const interpolation = (from: number, to: number) => {
        const m = new Array<number>(to * from).fill(0);
        for (let t = 0; t < to; t++) {
          const src = (t * from) / to;
          const lo = Math.floor(src);
          const hi = Math.min(lo + 1, from - 1);
          m[t * from + lo] += 1 - (src - lo);
          m[t * from + hi] += src - lo;
        }
        return tf.tensor2d(m, [to, from]);
      };
      const [Ry, Rx] = [interpolation(4, 8), interpolation(3, 6)];
      const cases: Array<[string, (c: tf.Tensor) => tf.Tensor, (c: tf.Tensor) => tf.Tensor]> = [
        ['nearest x2', (c) => tf.image.resizeNearestNeighbor(c as tf.Tensor4D, [8, 6]), (c) => tf.reshape(tf.tile(tf.reshape(c, [2, 4, 1, 3, 1, 2]), [1, 1, 2, 1, 2, 1]), [2, 8, 6, 2])],
        ['bilinear x2', (c) => tf.image.resizeBilinear(c as tf.Tensor4D, [8, 6]), (c) => tf.einsum('bawc,dw->badc', tf.einsum('ah,bhwc->bawc', Ry, c), Rx)],
      ];
      for (const [name, op, plain] of cases) {
        const weights = tf.tensor1d(values(2 * 8 * 6 * 2, 0.9));
        const [got, want] = [op, plain].map((g) => penaltyGrads((z, k, v) => tf.mul(tf.reshape(g(conv(z, k)), [-1]), v), x, [K, weights]));
        close(got[0], want[0], 1e-4, `${name}: filter`);
        close(got[1], want[1], 1e-4, `${name}: weights`);
        weights.dispose();
      }
      const vol = tf.tensor5d(values(1 * 4 * 4 * 4 * 2, 0.1), [1, 4, 4, 4, 2]);
      const K3 = tf.tensor5d(values(2 * 2 * 2 * 2 * 2, 2.1, 0.5), [2, 2, 2, 2, 2]);
      const conv3 = (z: tf.Tensor, k: tf.Tensor) => tf.conv3d(z as tf.Tensor5D, k as tf.Tensor5D, 1, 'same');
      // Pairs along one axis at a time (at most 6 dimensions: webgpu reduces no more).
      const pairs = (c: tf.Tensor, axis: number, reduce: (t: tf.Tensor, axis: number) => tf.Tensor) =>
        reduce(tf.reshape(c, [...c.shape.slice(0, axis), c.shape[axis] / 2, 2, ...c.shape.slice(axis + 1)]), axis + 1);
      const blocks = (c: tf.Tensor, reduce: (t: tf.Tensor, axis: number) => tf.Tensor) => pairs(pairs(pairs(c, 1, reduce), 2, reduce), 3, reduce);
      const pools: Array<[string, (c: tf.Tensor) => tf.Tensor, (c: tf.Tensor) => tf.Tensor]> = [
        ['max pool 3-D', (c) => tf.maxPool3d(c as tf.Tensor5D, 2, 2, 'valid'), (c) => blocks(c, (t, a) => tf.max(t, a))],
        ['average pool 3-D', (c) => tf.avgPool3d(c as tf.Tensor5D, 2, 2, 'valid'), (c) => blocks(c, (t, a) => tf.mean(t, a))],
      ];
      for (const [name, op, plain] of pools) {
        const weights = tf.tensor1d(values(16, 1.3));
        const [got, want] = [op, plain].map((g) => penaltyGrads((z, k, v) => tf.mul(tf.reshape(g(conv3(z, k)), [-1]), v), vol, [K3, weights]));
        close(got[0], want[0], 1e-4, `${name}: filter`);
        close(got[1], want[1], 1e-4, `${name}: weights`);
        weights.dispose();
      }
      tf.dispose([x, K, Ry, Rx, vol, K3]);
    });

    it('Hessian-vector products of 32 nonlinear ops equal central differences of their gradients', () => {
      const X = [0.3, -1.7, 2.2, -0.4, 0.15, 1.5, -3.1, 0.9, 1.1, -2.6, 1.2, -0.05];
      const OPS: Record<string, (z: tf.Tensor) => tf.Tensor> = {
        exp: tf.exp, log1p: (z) => tf.log1p(tf.abs(z)), sqrt: (z) => tf.sqrt(tf.abs(z).add(0.5)), rsqrt: (z) => tf.rsqrt(tf.abs(z).add(0.5)), sigmoid: tf.sigmoid, tanh: tf.tanh,
        softplus: tf.softplus, elu: (z) => tf.elu(tf.add(z, 0.03)), selu: (z) => tf.selu(tf.add(z, 0.03)), softmax: tf.softmax, logSoftmax: tf.logSoftmax, softmaxAxis0: (z) => tf.softmax(z, 0),
        erf: tf.erf, sin: tf.sin, cos: tf.cos, atan: tf.atan, asinh: tf.asinh, atan2: (z) => tf.atan2(z, tf.reverse(z, 0)), pow: (z) => tf.pow(tf.abs(z).add(0.5), tf.tensor1d([0.5, 2, 3])),
        square: tf.square, reciprocal: (z) => tf.reciprocal(tf.abs(z).add(0.5)), log: (z) => tf.log(tf.abs(z).add(0.5)), div: (z) => tf.div(z, tf.reverse(z, 1).add(5)),
        squaredDifference: (z) => tf.squaredDifference(z, tf.reverse(z, 0)), variance: (z) => tf.moments(z, 1).variance, prod: (z) => tf.prod(z, 1), logSumExp: (z) => tf.logSumExp(z, 1),
        norm: (z) => tf.norm(z), cumprod: (z) => tf.cumprod(z, 0), where: (z) => tf.where(tf.greater(z, 0), tf.square(z), tf.exp(z)), einsum: (z) => tf.einsum('ij,kj->ik', z, z), divNoNan: (z) => tf.divNoNan(tf.square(z), tf.relu(tf.sub(tf.reverse(z, 1), 0.2))),
      };
      expect(Object.keys(OPS)).to.have.length(32);
      for (const [name, op] of Object.entries(OPS)) {
        const [hvp, fd] = tf.tidy(() => {
          const x = tf.tensor2d(X, [4, 3]);
          const w = tf.tensor(values(op(x).size, 0.4), op(x).shape);
          const v = tf.tensor2d(values(12, 2.2), [4, 3]);
          const gradient = (z: tf.Tensor) => tf.grad((q: tf.Tensor) => tf.sum(tf.mul(op(q), w)))(z);
          const h = 1e-2;
          const product = tf.grad((z: tf.Tensor) => tf.sum(tf.mul(gradient(z), v)))(x);
          const differences = tf.div(tf.sub(gradient(tf.add(x, tf.mul(v, h))), gradient(tf.sub(x, tf.mul(v, h)))), 2 * h);
          return [product.dataSync(), differences.dataSync()];
        });
        close(hvp, fd, 2e-2, name);
      }
    });

    it("max pools with overlapping windows (3x3 at stride 2 'same', 3x3 at stride 1, 2x2x2 at stride 1 in 3-D): the penalty's gradients equal those of the max over strided slices (tfjs: no gradient)", () => {
      /** The max over each window as a max over the window's offsets, each a strided slice of the input padded with -1e9 (never chosen). */
      const slicedMax = (c: tf.Tensor, window: number, stride: number, out: number[], padAfter: number) => {
        const spatial = c.rank - 2;
        const padded = tf.pad(c, [[0, 0], ...new Array(spatial).fill([0, padAfter]), [0, 0]] as Array<[number, number]>, -1e9);
        const offsets = Array.from({ length: window ** spatial }, (_, k) => Array.from({ length: spatial }, (_, d) => Math.floor(k / window ** (spatial - 1 - d)) % window));
        const slices = offsets.map((o) => tf.stridedSlice(padded, [0, ...o, 0], [c.shape[0], ...o.map((v, d) => v + (out[d] - 1) * stride + 1), c.shape[c.rank - 1]], [1, ...o.map(() => stride), 1]));
        return tf.max(tf.stack(slices), 0);
      };
      const x = tf.tensor4d(values(2 * 6 * 6 * 2, 0.4), [2, 6, 6, 2]);
      const K = tf.tensor4d(values(3 * 3 * 2 * 2, 1.4, 0.5), [3, 3, 2, 2]);
      const conv = (z: tf.Tensor, k: tf.Tensor) => tf.conv2d(z as tf.Tensor4D, k as tf.Tensor4D, 1, 'same');
      const vol = tf.tensor5d(values(4 * 4 * 4 * 2, 0.7), [1, 4, 4, 4, 2]);
      const K3 = tf.tensor5d(values(2 * 2 * 2 * 2 * 2, 2.3, 0.5), [2, 2, 2, 2, 2]);
      const conv3 = (z: tf.Tensor, k: tf.Tensor) => tf.conv3d(z as tf.Tensor5D, k as tf.Tensor5D, 1, 'same');
      // 6 over 3x3 at stride 2, 'same': 3 outputs, TensorFlow's padding puts the one extra row after.
      const cases: Array<[string, tf.Tensor, tf.Tensor, (z: tf.Tensor, k: tf.Tensor) => tf.Tensor, (z: tf.Tensor, k: tf.Tensor) => tf.Tensor]> = [
        ["3x3 at stride 2, 'same'", x, K, (z, k) => tf.maxPool(conv(z, k) as tf.Tensor4D, 3, 2, 'same'), (z, k) => slicedMax(conv(z, k), 3, 2, [3, 3], 1)],
        ["3x3 at stride 1, 'valid'", x, K, (z, k) => tf.maxPool(conv(z, k) as tf.Tensor4D, 3, 1, 'valid'), (z, k) => slicedMax(conv(z, k), 3, 1, [4, 4], 0)],
        ["3-D 2x2x2 at stride 1, 'valid'", vol, K3, (z, k) => tf.maxPool3d(conv3(z, k) as tf.Tensor5D, 2, 1, 'valid'), (z, k) => slicedMax(conv3(z, k), 2, 1, [3, 3, 3], 0)],
      ];
      for (const [name, input, filter, op, plain] of cases) {
        const n = tf.tidy(() => op(input, filter).size);
        const weights = tf.tensor1d(values(n, 0.8));
        const [got, want] = [op, plain].map((g) => penaltyGrads((z, k, v) => tf.mul(tf.reshape(g(z, k), [-1]), v), input, [filter, weights]));
        close(got[0], want[0], 1e-4, `${name}: filter`);
        close(got[1], want[1], 1e-4, `${name}: weights`);
        weights.dispose();
      }
      tf.dispose([x, K, vol, K3]);
    });
  });
}
