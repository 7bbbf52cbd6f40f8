import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { datasetData, type Batch } from '../src';
import { tinyMlp, tinyTrainer, useBackend } from './fixtures';

// tf.data pipelines of plain values (tfjs's csv pattern: map rows to arrays, batch() makes the tensors).
describe('datasetData with elements of numbers, arrays and typed arrays', () => {
  useBackend('cpu');

  const features = (i: number) => [Math.sin(i), Math.cos(i), (i % 3) - 1, 0.5];
  const plainRows = (n: number) => Array.from({ length: n }, (_, i) => ({ xs: features(i), ys: i % 3 }));
  const tensorRows = (n: number) => Array.from({ length: n }, (_, i) => ({ xs: tf.tensor1d(features(i)), ys: tf.scalar(i % 3, 'int32') }));

  async function allBatches(source: ReturnType<typeof datasetData>, batchSize: number, startBatch = 0): Promise<Batch[]> {
    const it = source.batches({ batchSize, shuffle: false, seed: 1, epoch: 0, startBatch }) as AsyncIterator<Batch>;
    const out: Batch[] = [];
    for (let r = await it.next(); !r.done; r = await it.next()) out.push(r.value);
    return out;
  }

  it('trains on { xs: number[], ys: number } as on the same data in tensors: the same history, nothing leaks', async () => {
    const before = tf.memory().numTensors;
    const fitOn = async (rows: tf.TensorContainerObject[]) => {
      const model = tinyMlp();
      const t = tinyTrainer({ model, metrics: ['accuracy'] });
      const h = await t.fit(datasetData(tf.data.array(rows), { size: 48 }), { epochs: 3, batchSize: 8 });
      const evaluated = await t.evaluate(datasetData(tf.data.array(rows)));
      t.dispose();
      model.dispose();
      return { loss: h.history.loss, acc: h.history.acc, evaluated };
    };
    const elements = tensorRows(48);
    const fromTensors = await fitOn(elements);
    tf.dispose(elements.flatMap((e) => [e.xs, e.ys]));
    const fromPlain = await fitOn(plainRows(48));
    expect(fromPlain).to.deep.equal(fromTensors);
    expect(fromPlain.loss[2]).to.be.lessThan(fromPlain.loss[0]);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it("batches with arrayData's dtypes: xs float32; whole-number ys int32 class indices, other ys float32", async () => {
    const before = tf.memory().numTensors;
    const batches = await allBatches(datasetData(tf.data.array(plainRows(10))), 4);
    expect(batches.map((b) => b.x.shape)).to.deep.equal([[4, 4], [4, 4], [2, 4]]);
    expect(batches.map((b) => [b.x.dtype, b.y.dtype])).to.deep.equal([['float32', 'int32'], ['float32', 'int32'], ['float32', 'int32']]);
    expect(Array.from(batches[1].y.dataSync())).to.deep.equal([1, 2, 0, 1]);
    expect(Array.from(batches[0].x.dataSync()).slice(0, 4)).to.deep.equal(Array.from(Float32Array.from(features(0))));
    tf.dispose(batches.flatMap((b) => [b.x, b.y]));

    // Typed arrays, nested arrays (more axes), one-hot rows and fractional targets.
    const rows = [0, 1, 2].map((i) => ({ xs: [Float32Array.of(i, 1), Float32Array.of(2, 3)], ys: [i === 0 ? 1 : 0, i === 0 ? 0 : 1] }));
    const [b] = await allBatches(datasetData(tf.data.array(rows)), 3);
    expect([b.x.shape, b.x.dtype, b.y.shape, b.y.dtype]).to.deep.equal([[3, 2, 2], 'float32', [3, 2], 'float32']);
    expect(Array.from(b.x.dataSync())).to.deep.equal([0, 1, 2, 3, 1, 1, 2, 3, 2, 1, 2, 3]);
    tf.dispose([b.x, b.y]);
    const [r] = await allBatches(datasetData(tf.data.array([{ xs: Int32Array.of(1), ys: 0.5 }, { xs: Int32Array.of(2), ys: 2 }])), 2);
    expect([r.x.dtype, r.y.dtype, Array.from(r.y.dataSync())]).to.deep.equal(['float32', 'float32', [0.5, 2]]);
    tf.dispose([r.x, r.y]);

    // A resumed epoch starts at its batch.
    const later = await allBatches(datasetData(tf.data.array(plainRows(10))), 4, 2);
    expect(later.map((l) => Array.from(l.y.dataSync()))).to.deep.equal([[2, 0]]);
    tf.dispose(later.flatMap((l) => [l.x, l.y]));
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('takes a tensor xs with a number ys, and frees the elements it stacks', async () => {
    const t = tinyTrainer();
    await t.setup();
    const before = tf.memory().numTensors;
    const ds = tf.data.array(plainRows(16)).map((e) => ({ xs: tf.tensor1d(e.xs), ys: e.ys }));
    const h = await t.fit(datasetData(ds), { epochs: 2, batchSize: 8 });
    expect(h.epoch).to.deep.equal([0, 1]);
    expect(t.step).to.equal(4);
    expect(tf.memory().numTensors).to.equal(before);
    t.dispose();
  });

  it('names what it found and what it accepts, before a shuffle buffer fills: nothing leaks', async () => {
    const t = tinyTrainer();
    await t.setup();
    const before = tf.memory().numTensors;
    // Rows are made inside the loop, so their tensors are not counted.
    const cases: [() => object[], RegExp][] = [
      [() => [{ xs: 'a,b,c,d', ys: 0 }], /TAPFIT_E_CONFIG.*xs and ys must each be a tensor, a number, an array of numbers \(nested for more axes\) or a typed array; got \{ xs: a string, ys: a number \}\. Map them/],
      [() => [{ xs: [1, 2, '3', 4], ys: tf.scalar(0) }], /got \{ xs: an array holding a string, ys: a tensor of shape \[\] \}/],
      [() => [{ xs: [[1, 2], [3]], ys: 0 }], /got \{ xs: an array whose items differ in shape \(\[2\] and \[1\]\), ys: a number \}/],
      [() => [{ xs: { a: 1, b: 2, c: 3, d: 4 }, ys: { label: 0 } }], /got \{ xs: an object with keys a, b, c, d, ys: an object with keys label \}\. Map the columns to arrays, e\.g\. ds\.map\(\(\{ xs, ys \}\) => \(\{ xs: Object\.values\(xs\), ys: Object\.values\(ys\)\[0\] \}\)\)/],
      [() => [{ xs: [1, 2, 3, 4] }], /got \{ xs: an array of 4, ys: missing \}/],
      [() => [{ xs: tf.tensor1d([1, 2, 3, 4]), ys: 0 }, { xs: [1, 2, 3, 4], ys: 1 }], /TAPFIT_E_CONFIG.*some elements' xs are tensors and others are not/],
      [() => [{ xs: [1, 2, 3, 4], ys: 0 }, { xs: [1, 2, 3], ys: 1 }], /TAPFIT_E_SHAPE.*the elements' xs differ in shape \((\[4\] and \[3\]|\[3\] and \[4\])\)/], // in the shuffle's order
      [() => [{ xs: [1, 2, 3, 4], ys: 0 }, { xs: [1, 2, 3, null], ys: 1 }], /an element's xs must be a tensor, .*; got xs: an array holding null/],
    ];
    for (const [makeRows, pattern] of cases) {
      const rows = makeRows();
      const err = await t.fit(datasetData(tf.data.array(rows as never)), { epochs: 1, batchSize: 8 }).then(
        () => expect.fail(`accepted ${pattern}`),
        (e: Error & { code?: string }) => e,
      );
      expect(`${err.code} ${err.message}`).to.match(pattern);
      tf.dispose(rows.flatMap((r) => Object.values(r)).filter((v): v is tf.Tensor => v instanceof tf.Tensor));
      expect(tf.memory().numTensors, String(pattern)).to.equal(before);
    }
    expect(t.step).to.equal(0);
    t.dispose();
  });
});
