import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { type Box, cropReference, onBackendOrSkip } from './helpers';

/*
 * The gradients tfjs lacks that compute (wasm-shim/missing-gradients.ts, cumprod-grad.ts,
 * einsum-grad.ts, crop-and-resize-grad.ts) and the kernel fixes they need (einsum.ts,
 * cumulative-axis.ts), on cpu, wasm and webgpu where there is an adapter, against oracles that do not
 * use them: a float64 brute force (Cumprod), autodiff of the same function written with
 * plain ops (Einsum, FloorMod, the sparse segment reductions), float64 finite differences
 * of a reference forward (CropAndResize), and linearity (a transposed 3-D convolution).
 */

const weights = (n: number, phase = 1) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + phase));

/** d sum(f(...xs) * w) / d xs through the tape, w fixed; no tensor is left behind (checked outside any tidy). */
function taped(f: (...xs: tf.Tensor[]) => tf.Tensor, xs: tf.Tensor[]): number[][] {
  const w = tf.tidy(() => {
    const y = f(...xs);
    return tf.tensor(weights(y.size), y.shape);
  });
  const before = tf.memory().numTensors;
  const grads = tf.grads((...zs: tf.Tensor[]) => f(...zs).mul(w).sum())(xs);
  const values = grads.map((g) => Array.from(g.dataSync()));
  tf.dispose([...grads, w]);
  expect(tf.memory().numTensors, 'tensors left by the gradient').to.equal(before - 1);
  return values;
}

function close(actual: number[], expected: number[], tolerance: number, what: string): void {
  expect(actual, what).to.have.length(expected.length);
  const scale = Math.max(1, ...expected.map(Math.abs));
  actual.forEach((v, i) => {
    expect(Number.isFinite(v), `${what}: element ${i} is ${v}`).to.equal(true);
    expect(Math.abs(v - expected[i]) / scale, `${what}: element ${i}: ${v} against ${expected[i]}`).to.be.below(tolerance);
  });
}

/** Float64 oracle of Cumprod's gradient: dx_i = sum_j w_j d y_j / d x_i, each product written out. */
function cumprodOracle(x: number[], shape: number[], axis: number, exclusive: boolean, reverse: boolean): number[] {
  const n = shape[axis];
  const inner = shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const outer = x.length / (n * inner);
  const w = weights(x.length);
  const dx = new Array<number>(x.length).fill(0);
  for (let o = 0; o < outer; o++) {
    for (let r = 0; r < inner; r++) {
      const at = (k: number) => (o * n + k) * inner + r;
      // Position j of the scan covers positions k (in scan order) up to j, or before j when exclusive.
      const order = Array.from({ length: n }, (_, k) => (reverse ? n - 1 - k : k));
      for (let j = 0; j < n; j++) {
        const covered = order.slice(0, exclusive ? j : j + 1);
        for (const i of covered) {
          const product = covered.filter((k) => k !== i).reduce((p, k) => p * x[at(k)], 1);
          dx[at(i)] += w[at(order[j])] * product;
        }
      }
    }
  }
  return dx;
}

/** Central differences in float64 of sum(w * f(v)) for each element of v. */
function finiteDifferences(f: (v: number[]) => number[], v: number[], h: number): number[] {
  const loss = (u: number[]) => {
    const y = f(u);
    const w = weights(y.length);
    return y.reduce((s, value, i) => s + value * w[i], 0);
  };
  return v.map((_, i) => {
    const [up, down] = [v.slice(), v.slice()];
    up[i] += h;
    down[i] -= h;
    return (loss(up) - loss(down)) / (2 * h);
  });
}

for (const backend of ['cpu', 'wasm', 'webgpu']) {
  describe(`backend: computed gradients tfjs lacks, on ${backend}`, function () {
    before(async function () {
      await onBackendOrSkip(this, backend, 'computed gradients on webgpu');
    });
    after(() => tf.setBackend('cpu'));

    it('Cumprod: the brute-force float64 gradient for every axis, exclusive and reverse, with zeros in x (no NaN)', () => {
      const shape = [3, 5, 4];
      const values = weights(60, 0.3).map((v) => 0.5 + v);
      // Zeros, two of them in one line along every axis.
      for (const i of [0, 7, 12, 27, 33, 47, 59]) values[i] = 0;
      const x = tf.tensor(values, shape);
      for (const axis of [0, 1, 2, -1]) {
        for (const exclusive of [false, true]) {
          for (const reverse of [false, true]) {
            const [got] = taped((z) => tf.cumprod(z, axis, exclusive, reverse), [x]);
            close(got, cumprodOracle(values, shape, axis < 0 ? axis + 3 : axis, exclusive, reverse), 1e-5, `axis ${axis} exclusive ${exclusive} reverse ${reverse}`);
          }
        }
      }
      const long = tf.tensor1d(weights(37, 2).map((v) => 1 + 0.1 * v));
      const [got] = taped((z) => tf.cumprod(z), [long]);
      close(got, cumprodOracle(Array.from(long.dataSync()), [37], 0, false, false), 1e-5, 'length 37 (six rounds of the scan)');
      tf.dispose([x, long]);
    });

    it('Cumsum and Cumprod count a negative axis from the end (tfjs gave a shape with undefined on cpu, threw on wasm); out of range is an error', () => {
      const x = tf.tensor(weights(24, 0.6).map((v) => 1 + v), [2, 3, 4]);
      for (const op of [tf.cumsum, tf.cumprod]) {
        for (const [negative, positive] of [[-1, 2], [-2, 1], [-3, 0]]) {
          const [a, b] = tf.tidy(() => [op(x, negative, true, true), op(x, positive, true, true)].map((y) => ({ shape: y.shape, values: Array.from(y.dataSync()) })));
          expect(a.shape).to.deep.equal([2, 3, 4]);
          close(a.values, b.values, 1e-12, `axis ${negative}`);
        }
        expect(() => op(x, 3)).to.throw(/axis 3 is out of range for a rank-3 tensor.*from -3 to 2/);
      }
      x.dispose();
    });

    it("Prod's gradient with negative axes (tfjs's threw on every backend) equals the float64 product of the others, zeros included", () => {
      const shape = [2, 3, 4];
      const values = weights(24, 0.8).map((v) => 1 + v);
      values[5] = 0;
      const x = tf.tensor(values, shape);
      for (const [axis, keepDims] of [[-1, false], [-2, true], [[-1, 0], false], [[0, -2], true]] as Array<[number | number[], boolean]>) {
        const axes = (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + 3 : a));
        const [got] = taped((z) => tf.prod(z, axis, keepDims), [x]);
        // Each element's group: the elements that differ from it only along the reduced axes.
        const y = tf.tidy(() => tf.prod(x, axis, keepDims));
        const w = weights(y.size);
        y.dispose();
        const index = (i: number) => [Math.floor(i / 12), Math.floor(i / 4) % 3, i % 4];
        const outIndex = (at: number[]) => {
          const kept = [0, 1, 2].filter((d) => !axes.includes(d));
          return kept.reduce((flat, d) => flat * shape[d] + at[d], 0);
        };
        const expected = values.map((_, i) => {
          const at = index(i);
          const others = values.filter((_, j) => j !== i && index(j).every((c, d) => axes.includes(d) || c === at[d]));
          return w[outIndex(at)] * others.reduce((p, v) => p * v, 1);
        });
        close(got, expected, 1e-5, `axis ${JSON.stringify(axis)} keepDims ${keepDims}`);
      }
      x.dispose();
    });

    it('Einsum: values and the gradients of each operand equal those of the same product written with plain ops', () => {
      const t = (shape: number[], phase: number) => tf.tensor(weights(shape.reduce((a, b) => a * b, 1), phase), shape);
      const cases: Array<[string, number[][], (...xs: tf.Tensor[]) => tf.Tensor]> = [
        ['ij,jk->ik', [[3, 4], [4, 2]], (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D)],
        ['bij,bjk->bik', [[2, 3, 4], [2, 4, 5]], (a, b) => tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D)],
        ['ij,kj->ik', [[3, 4], [5, 4]], (a, b) => tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, false, true)],
        ['ij->ji', [[3, 4]], (a) => tf.transpose(a)],
        ['ij->', [[3, 4]], (a) => tf.sum(a)],
        ['ij->j', [[3, 4]], (a) => tf.sum(a, 0)],
        ['i,j->ij', [[3], [4]], (a, b) => tf.mul(tf.reshape(a, [3, 1]), b)],
        ['bi,bi->b', [[3, 4], [3, 4]], (a, b) => tf.sum(tf.mul(a, b), 1)],
        ['i,i->', [[5], [5]], (a, b) => tf.sum(tf.mul(a, b))],
        ['ij,k->ik', [[3, 4], [2]], (a, b) => tf.mul(tf.sum(a, 1, true), b)],
        ['ijk,k->ij', [[2, 3, 4], [4]], (a, b) => tf.sum(tf.mul(a, b), 2)],
        ['ij,j->', [[3, 2], [2]], (a, b) => tf.sum(tf.mul(a, b))],
        ['ij,k->i', [[3, 2], [2]], (a, b) => tf.mul(tf.sum(a, 1), tf.sum(b))],
        ['bij,bjk->bki', [[2, 3, 4], [2, 4, 5]], (a, b) => tf.transpose(tf.matMul(a as tf.Tensor3D, b as tf.Tensor3D), [0, 2, 1])],
        ['ij->ij', [[3, 4]], (a) => tf.clone(a)],
      ];
      cases.forEach(([equation, shapes, plain], c) => {
        const xs = shapes.map((s, k) => t(s, c + k));
        // The forward first: tfjs's own kernel got 'ij,k->ik', 'ijk,k->ij'-like and scalar outputs wrong.
        // The composite frees its intermediates: the backend holds no more data after than before.
        const dataIds = tf.backend().numDataIds();
        tf.einsum(equation, ...xs).dispose();
        expect(tf.backend().numDataIds(), `${equation}: backend data left`).to.equal(dataIds);
        const [value, plainValue] = tf.tidy(() => [tf.einsum(equation, ...xs), plain(...xs)].map((y) => ({ shape: y.shape, values: Array.from(y.dataSync()) })));
        expect(value.shape, `${equation}: shape`).to.deep.equal(plainValue.shape);
        close(value.values, plainValue.values, 1e-5, `${equation}: values`);
        const got = taped((...zs) => tf.einsum(equation, ...zs), xs);
        const want = taped(plain, xs);
        got.forEach((g, k) => close(g, want[k], 1e-5, `${equation}, operand ${k}`));
        tf.dispose(xs);
      });
    });

    it('CropAndResize: image and box gradients equal float64 finite differences of the reference (bilinear, nearest, crop of 1, boxes past the edges)', () => {
      const shape = [2, 5, 6, 2];
      const image = weights(120, 0.9);
      // Sample positions stay off whole pixels (where bilinear has kinks) and off the edges.
      const boxes: Box[] = [
        { y1: 0.13, x1: 0.07, y2: 0.81, x2: 0.94 },
        { y1: 0.71, x1: 0.66, y2: 0.22, x2: 0.31 },
        { y1: -0.27, x1: 0.19, y2: 0.58, x2: 1.33 },
      ];
      const boxInd = [1, 0, 1];
      const flat = (bs: Box[]) => bs.flatMap((b) => [b.y1, b.x1, b.y2, b.x2]);
      const unflat = (v: number[]) => boxes.map((_, i) => ({ y1: v[4 * i], x1: v[4 * i + 1], y2: v[4 * i + 2], x2: v[4 * i + 3] }));
      for (const method of ['bilinear', 'nearest'] as const) {
        for (const crop of [[4, 3], [1, 1]] as Array<[number, number]>) {
          const what = `${method}, crop ${crop}`;
          const [gImage, gBoxes] = taped((im, bx) => tf.image.cropAndResize(im as tf.Tensor4D, bx as tf.Tensor2D, boxInd, crop, method, 0.25), [tf.tensor(image, shape), tf.tensor2d(flat(boxes), [3, 4])]);
          close(gImage, finiteDifferences((im) => cropReference(im, shape, boxes, boxInd, crop, method, 0.25), image, 1e-3), 1e-4, `${what}: image`);
          const boxOracle = method === 'nearest' ? new Array<number>(12).fill(0) : finiteDifferences((bx) => cropReference(image, shape, unflat(bx), boxInd, crop, method, 0.25), flat(boxes), 1e-7);
          close(gBoxes, boxOracle, 1e-3, `${what}: boxes`);
        }
      }
    });

    it('FloorMod (tf.mod) with broadcasting, and SparseSegmentSum / SparseSegmentMean: as their plain forms', () => {
      const a = tf.tensor2d(weights(12, 0.4).map((v) => 5 * v), [3, 4]);
      const b = tf.tensor1d([1.3, -0.7, 2.1, 0.45]);
      const [modA, modB] = taped((p, q) => tf.mod(p, q), [a, b]);
      const [plainA, plainB] = taped((p, q) => tf.sub(p, tf.mul(tf.floor(tf.div(p, q)), q)), [a, b]);
      close(modA, plainA, 1e-6, 'mod: a');
      close(modB, plainB, 1e-6, 'mod: b');
      const data = tf.tensor2d(weights(18, 1.7), [6, 3]);
      const indices = tf.tensor1d([0, 2, 2, 5, 1], 'int32');
      const segmentIds = tf.tensor1d([0, 0, 1, 3, 3], 'int32');
      const counts = tf.tensor2d([2, 1, 1, 2], [4, 1]);
      const gathered = (d: tf.Tensor) => tf.unsortedSegmentSum(tf.gather(d, indices), segmentIds, 4);
      close(taped((d) => tf.sparse.sparseSegmentSum(d, indices, segmentIds), [data])[0], taped(gathered, [data])[0], 1e-6, 'sparseSegmentSum');
      // Segment 2 is empty: its row of the mean is 0 and its count stands at 1 here.
      close(taped((d) => tf.sparse.sparseSegmentMean(d, indices, segmentIds), [data])[0], taped((d) => tf.div(gathered(d), counts), [data])[0], 1e-6, 'sparseSegmentMean');
      tf.dispose([a, b, data, indices, segmentIds, counts]);
    });

    it("Conv3DBackpropInputV2 (tf.conv3dTranspose): input and filter gradients satisfy linearity, L(u + v) - L(u) = <grad, v>; a Conv3DTranspose layer's loss falls", () => {
      for (const [strides, pad] of [[1, 'same'], [2, 'same'], [2, 'valid']] as Array<[number, 'same' | 'valid']>) {
        const inShape: [number, number, number, number, number] = [2, 3, 3, 2, 3];
        const outShape: [number, number, number, number, number] = pad === 'same' ? [2, 3 * strides, 3 * strides, 2 * strides, 4] : [2, 3 * strides + 1, 3 * strides + 1, 2 * strides + 1, 4];
        const fShape: [number, number, number, number, number] = [3, 3, 3, 4, 3];
        const x = tf.tensor5d(weights(108, 0.2), inShape);
        const f = tf.tensor5d(weights(324, 1.1).map((v) => 0.3 * v), fShape);
        const op = (u: tf.Tensor, g: tf.Tensor) => tf.conv3dTranspose(u as tf.Tensor5D, g as tf.Tensor5D, outShape, strides, pad);
        const [gx, gf] = taped(op, [x, f]);
        const loss = (u: tf.Tensor, g: tf.Tensor) => tf.tidy(() => {
          const y = op(u, g);
          return tf.sum(tf.mul(y, tf.tensor(weights(y.size), y.shape))).dataSync()[0];
        });
        const vx = weights(108, 2.5);
        const vf = weights(324, 3.1);
        const moved = (t: tf.Tensor, v: number[]) => tf.add(t, tf.tensor(v, t.shape));
        const dot = (g: number[], v: number[]) => g.reduce((s, value, i) => s + value * v[i], 0);
        const [ux, uf] = [moved(x, vx), moved(f, vf)];
        const base = loss(x, f);
        expect(loss(ux, f) - base, `stride ${strides} ${pad}: input`).to.be.closeTo(dot(gx, vx), 1e-3 * Math.abs(dot(gx, vx)) + 1e-3);
        expect(loss(x, uf) - base, `stride ${strides} ${pad}: filter`).to.be.closeTo(dot(gf, vf), 1e-3 * Math.abs(dot(gf, vf)) + 1e-3);
        tf.dispose([x, f, ux, uf]);
      }
      const model = tf.sequential({ layers: [tf.layers.conv3dTranspose({ inputShape: [3, 3, 2, 2], filters: 2, kernelSize: 3, strides: 2, padding: 'same' }), tf.layers.flatten(), tf.layers.dense({ units: 1 })] });
      const xs = tf.tensor5d(weights(72, 0.5), [2, 3, 3, 2, 2]);
      const ys = tf.tensor2d([0.5, -0.5], [2, 1]);
      const optimizer = tf.train.sgd(0.01);
      const lossOf = () => tf.losses.meanSquaredError(ys, model.apply(xs) as tf.Tensor) as tf.Scalar;
      const first = tf.tidy(() => lossOf().dataSync()[0]);
      for (let i = 0; i < 5; i++) tf.dispose(optimizer.minimize(lossOf) ?? []);
      expect(tf.tidy(() => lossOf().dataSync()[0])).to.be.below(first);
      tf.dispose([xs, ys]);
      model.dispose();
      optimizer.dispose();
    });
  });
}
