import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, installMemoryGuard, TapfitError, tensorData, type History, type Trainer } from '../src';
import { recordHostReads } from '../src/testing';
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

  it('fit(x, y) with tensors, shuffle and validationSplit keeps x on the device (never read back) and trains as the same values on the host do, bit for bit', async () => {
    const x = tf.randomNormal([40, 4], 0, 1, 'float32', 3);
    const labels = Int32Array.from({ length: 40 }, (_, i) => (i * 7) % 3);
    const y = tf.tensor1d(labels, 'int32');
    const options = { epochs: 2, batchSize: 8, shuffle: true, validationSplit: 0.25, verbose: 0 } as const;
    const onDevice = tinyTrainer({ seed: 5 });
    let fromTensors!: History;
    const sizes = await recordHostReads(async () => void (fromTensors = await onDevice.fit(x, y, options)));
    expect(sizes.filter((n) => n >= 30 * 4), 'no read-back of x or of its training rows').to.deep.equal([]);
    const host = arrayData({ x: x.dataSync(), y: labels, xShape: [4] });
    const onHost = tinyTrainer({ seed: 5 });
    const fromHost = await onHost.fit(host, options);
    expect(fromTensors.history).to.deep.equal(fromHost.history);
    const weights = (t: Trainer) => t.model.layersModel!.getWeights().map((w) => Array.from(w.dataSync()));
    expect(weights(onDevice)).to.deep.equal(weights(onHost));
    expect(x.isDisposed || y.isDisposed, "fit leaves the caller's tensors alone").to.equal(false);
    [onDevice, onHost].forEach((t) => t.dispose());
    host.dispose();
    tf.dispose([x, y]);
  });

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

  it('arrayData and fit(x, y) with arrays keep the data on the host only: a dataset larger than the memory budget trains, with the history of tensors', async () => {
    const n = 16384; // x: 256 KiB of float32
    const x = Float32Array.from({ length: n * 4 }, (_, i) => Math.sin(i * 0.37));
    const y = Int32Array.from({ length: n }, (_, i) => i % 3);
    const options = { epochs: 1, batchSize: 256, shuffle: true, verbose: 0 as const };
    const historyOf = async (fit: (t: Trainer) => Promise<History>, budgetBytes?: number) => {
      const model = tinyMlp();
      const t = tinyTrainer({ model });
      await t.setup();
      const guard = budgetBytes === undefined ? undefined : installMemoryGuard(budgetBytes, 'cpu'); // counts what is allocated from here on
      try {
        return (await fit(t)).history;
      } finally {
        guard?.remove();
        t.dispose();
        model.dispose();
      }
    };
    // The oracle: the same data as tensors, no budget.
    const [xs, ys] = [tf.tensor2d(x, [n, 4]), tf.tensor1d(y, 'int32')];
    const expected = await historyOf((t) => t.fit(xs, ys, options));
    const expectedSplit = await historyOf((t) => t.fit(xs, ys, { ...options, validationSplit: 0.25 }));
    tf.dispose([xs, ys]);

    const before = tf.memory().numBytes;
    const data = arrayData({ x, y, xShape: [4] });
    expect(tf.memory().numBytes, 'arrayData uploads nothing').to.equal(before);
    const budget = x.byteLength / 2; // half the dataset: room for the steps, not for the data
    expect(await historyOf((t) => t.fit(data, options), budget)).to.deep.equal(expected);
    expect(await historyOf((t) => t.fit(data, { ...options, validationSplit: 0.25 }), budget)).to.deep.equal(expectedSplit);
    data.dispose();
    const rows = Array.from({ length: n }, (_, i) => Array.from(x.subarray(i * 4, i * 4 + 4)));
    expect(await historyOf((t) => t.fit(rows, Array.from(y), options), budget)).to.deep.equal(expected);
    expect(tf.memory().numBytes).to.equal(before);
  });

  it("a source's x and y are tensors when read: arrayData uploads them then, and dispose() frees them", () => {
    const before = tf.memory().numTensors;
    const data = arrayData({ x: [[1, 2], [3, 4], [5, 6]], y: [0, 1, 0] });
    expect(tf.memory().numTensors).to.equal(before);
    expect([data.x.shape, data.x.dtype, data.y.shape, data.y.dtype]).to.deep.equal([[3, 2], 'float32', [3], 'int32']);
    expect(Array.from(data.x.dataSync())).to.deep.equal([1, 2, 3, 4, 5, 6]);
    expect(data.x).to.equal(data.x); // uploaded once
    expect(tf.memory().numTensors).to.equal(before + 2);
    data.dispose();
    expect(tf.memory().numTensors).to.equal(before);
    expect(() => arrayData({ x: [[1, 2], [3]], y: [0, 1] })).to.throw(TapfitError, /data: x must be numbers, nested arrays of one shape or typed arrays; got an array whose items differ in shape \(\[2\] and \[1\]\)/);
  });
});
