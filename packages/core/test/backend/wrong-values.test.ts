import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useShimmedWasm } from './helpers';

/*
 * Stock wasm kernels that returned wrong values for some inputs (wasm-shim/wrong-values.ts),
 * found by a differential fuzz against cpu: each case's values and gradients against cpu.
 */

const values = (shape: number[], phase: number) => Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i * 1.7 + phase) * 2);

describe('backend: stock wasm kernels with wrong values for some inputs, against cpu', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));

  /** f's results (values and shapes) on `backend`, with nothing left behind. */
  const on = async (backend: string, f: () => tf.Tensor[]) => {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const ys = f();
    const out = ys.map((y) => ({ shape: y.shape, values: Array.from(y.dataSync()) }));
    tf.dispose(ys);
    expect(tf.memory().numTensors, `${backend}: tensors left behind`).to.equal(before);
    return out;
  };
  const expectSame = async (f: () => tf.Tensor[], tolerance = 1e-5) => {
    const cpu = await on('cpu', f);
    const wasm = await on('wasm', f);
    cpu.forEach((c, i) => {
      expect(wasm[i].shape, `result ${i} shape`).to.deep.equal(c.shape);
      c.values.forEach((v, j) => expect(Math.abs(wasm[i].values[j] - v), `result ${i}[${j}]: wasm ${wasm[i].values[j]}, cpu ${v}`).to.be.at.most(tolerance * Math.max(1, Math.abs(v))));
    });
  };

  it('cast to bool tests for non-zero (wasm kept the low byte: -1 was 255, 256 was false)', async () => {
    await expectSame(
      () =>
        tf.tidy(() => {
          const f = tf.cast(tf.tensor1d([0, 1, -1, 2.5, 256, -0, NaN]), 'bool');
          const i = tf.cast(tf.tensor1d([0, 1, 4, -1, 256, 3], 'int32'), 'bool');
          return [tf.cast(f, 'float32'), tf.sum(tf.cast(i, 'int32'))];
        }),
      0,
    );
  });

  for (const [label, xs, fs, strides, depthwise] of [
    ['conv2d, a 2x1 filter, strides [3, 1]', [1, 3, 9, 8], [2, 1, 8, 2], [3, 1], false],
    ['conv2d, a 1x2 filter, strides 2', [2, 12, 12, 3], [1, 2, 3, 4], [2, 2], false],
    ['depthwise, a 1x2 filter, stride 3', [2, 4, 3, 8], [1, 2, 8, 1], [3, 3], true],
  ] as [string, number[], number[], [number, number], boolean][]) {
    it(`'same' padding with a stride larger than the filter (wasm returned zeros): ${label}, values and gradients`, async () => {
      await expectSame(() => {
        const x = tf.tensor(values(xs, 0), xs);
        const w = tf.tensor(values(fs, 1), fs);
        const f = (a: tf.Tensor, b: tf.Tensor) => (depthwise ? tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, 'same') : tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, strides, 'same'));
        const y = f(x, w);
        const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(f(a, b), tf.tensor(values(y.shape, 2), y.shape))))([x, w]);
        tf.dispose([x, w]);
        return [y, dx, dw];
      });
    });
  }

  it('a convolution with an empty output gives an empty result and zero gradients (wasm wrote past its output)', async () => {
    await expectSame(() => {
      const x = tf.tensor(values([1, 9, 2, 2], 0), [1, 9, 2, 2]);
      const w = tf.tensor(values([3, 3, 2, 2], 1), [3, 3, 2, 2]);
      const out: tf.Tensor[] = [];
      for (const f of [(a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'valid'), (a: tf.Tensor, b: tf.Tensor) => tf.depthwiseConv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'valid')]) {
        out.push(f(x, w), ...tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(f(a, b)))([x, w]));
      }
      out.push(tf.add(x, 1)); // the heap is still sound afterwards
      tf.dispose([x, w]);
      return out;
    }, 0);
  });

  it('prelu with alpha along axes other than the last (wasm read it along the last axis)', async () => {
    await expectSame(() =>
      [
        [[4, 3], [4, 1]],
        [[2, 3, 4], [3, 1]],
        [[5, 2, 9, 1], [5, 2, 1, 1]],
        [[4, 3], [3]],
      ].flatMap(([xs, as]) => {
        const x = tf.tensor(values(xs, 0), xs);
        const a = tf.tensor(values(as, 1), as);
        const y = tf.prelu(x, a);
        const [dx, da] = tf.grads((p: tf.Tensor, q: tf.Tensor) => tf.prelu(p, q))([x, a]);
        tf.dispose([x, a]);
        return [y, dx, da];
      }),
    );
  });

  it('gather with batch dimensions and axes between them and the gathered axis (wasm returned garbage)', async () => {
    await expectSame(() => {
      const x = tf.tensor(values([4, 1, 3, 4], 0), [4, 1, 3, 4]);
      const i = tf.tensor1d([2, 0, 1, 2], 'int32');
      const x2 = tf.tensor(values([3, 2, 5, 4], 1), [3, 2, 5, 4]);
      const i2 = tf.tensor2d([[4, 0], [1, 1], [3, 2]], [3, 2], 'int32');
      const out = [tf.gather(x, i, 2, 1), tf.gather(x2, i2, 2, 1)];
      tf.dispose([x, i, x2, i2]);
      return out;
    }, 0);
  });
});
