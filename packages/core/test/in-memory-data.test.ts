import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, TapfitError, tensorData } from '../src';
import { tinyMlp, tinyTrainer, useBackend } from './fixtures';

// In-memory sources (arrayData, tensorData, fit(x, y)) at their limits.
describe('in-memory data: arrayData, tensorData, fit(x, y)', () => {
  useBackend('cpu');

  /** Runs `run` with Array.from failing past `limit` elements, as V8's does past ~134M (a JS array's length cap). */
  async function withArrayLengthCap<T>(limit: number, run: () => Promise<T> | T): Promise<T> {
    const from = Array.from;
    Array.from = function (this: unknown, ...args: unknown[]) {
      const source = args[0] as ArrayLike<unknown> | undefined;
      if (source && typeof source.length === 'number' && source.length > limit) throw new RangeError('Invalid array length');
      return (from as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof Array.from;
    try {
      return await run();
    } finally {
      Array.from = from;
    }
  }

  it('a flat y of whole numbers is class indices however long: tested in place, not copied into a JS array', async () => {
    const n = 20000;
    const x = Float32Array.from({ length: n * 4 }, (_, i) => Math.sin(i));
    const y = Float32Array.from({ length: n }, (_, i) => i % 3);
    const history = async (labels: tf.TensorLike | tf.Tensor) => {
      const model = tinyMlp();
      const t = tinyTrainer({ model });
      const xs = tf.tensor2d(x, [n, 4]);
      const h = await t.fit(xs, labels, { epochs: 1, batchSize: 2000, shuffle: false });
      xs.dispose();
      model.dispose();
      t.dispose();
      return h.history.loss;
    };
    const labels = tf.tensor1d(Int32Array.from(y), 'int32');
    const expected = await history(labels); // the oracle: the same labels as an int32 tensor
    labels.dispose();
    await withArrayLengthCap(10000, async () => {
      const data = arrayData({ x, y, xShape: [4] });
      expect(data.y.dtype).to.equal('int32');
      const read = data.y.dataSync();
      expect([read[0], read[1], read[2], read[n - 1]]).to.deep.equal([0, 1, 2, (n - 1) % 3]);
      data.dispose();
      expect(await history(y)).to.deep.equal(expected);
    });
  });

  it('a 0-d y or x is named as a scalar that needs a sample axis (model.fit refuses a 0-d tensor too)', async () => {
    const t = tinyTrainer();
    await t.setup();
    const before = tf.memory().numTensors;
    const [x, y, scalar] = [tf.randomNormal([1, 4]), tf.tensor1d([1], 'int32'), tf.scalar(1, 'int32')];
    const fitError = (a: tf.Tensor, b: tf.Tensor) => t.fit(a, b, { epochs: 1, batchSize: 1 }).then(() => expect.fail('fit resolved'), (e: TapfitError) => e);
    const yScalar = await fitError(x, scalar);
    expect([yScalar.code, yScalar.message]).to.deep.equal(['TAPFIT_E_SHAPE', 'data: y is a scalar (0-d); labels need a sample axis: pass [N] class indices or [N, ...] targets ([1] or [1, ...] for one sample).']);
    const xScalar = await fitError(scalar, y);
    expect(xScalar.code).to.equal('TAPFIT_E_SHAPE');
    expect(xScalar.message).to.match(/^data: x is a scalar \(0-d\); inputs need a sample axis/);
    expect(() => t.evaluate(x, scalar)).to.throw(TapfitError, /^evaluate: y is a scalar \(0-d\); labels need a sample axis/);
    expect(() => tensorData(x, scalar)).to.throw(TapfitError, /^data: y is a scalar/);
    tf.dispose([x, y, scalar]);
    expect(tf.memory().numTensors).to.equal(before);
    t.dispose();
  });
});
