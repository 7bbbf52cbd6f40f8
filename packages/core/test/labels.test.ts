import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { accuracy, arrayData, datasetData, losses, TapfitError, type LossFn } from '../src';
import { recordHostReads } from '../src/testing';
import { tinyMlp, tinyTrainer, useBackend, thrown, rejected } from './fixtures';



const logits = () => tf.tensor2d([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 1]]);
const classificationLosses: [string, LossFn][] = [
  ['softmaxCrossEntropy', losses.softmaxCrossEntropy],
  ['categoricalCrossentropy', (y, p) => losses.categoricalCrossentropy(y, tf.softmax(p))],
];

describe('labels', () => {
  useBackend('cpu');

  for (const [name, loss] of classificationLosses) {
    describe(name, () => {
      for (const [label, sample, values, dtype] of [
        ['5', 1, [0, 5, 1, 2], 'int32'],
        ['-1', 3, [0, 1, 2, -1], 'int32'],
        ['1.7', 2, [0, 1, 1.7, 2], 'float32'],
      ] as const) {
        it(`rejects the class index ${label} with 3 classes, naming the sample, the value and the range`, () => {
          const err = thrown(() => tf.tidy(() => loss(tf.tensor1d(values as unknown as number[], dtype), logits())));
          expect(err).to.be.instanceOf(TapfitError);
          expect(err.code).to.equal('TAPFIT_E_LABELS');
          expect(err.message).to.contain(`sample ${sample} of the batch has class index ${label}`);
          expect(err.message).to.contain('integers in [0, 2]');
          expect(err.message).to.contain('outputs 3 classes');
        });
      }

      it('rejects one-hot entries outside [0, 1] and rows that do not sum to 1', () => {
        const above = thrown(() => tf.tidy(() => loss(tf.tensor2d([[1, 0, 0], [0, 2, 0], [0, 0, 1], [1, 0, 0]]), logits())));
        expect(above.code).to.equal('TAPFIT_E_LABELS');
        expect(above.message).to.contain('sample 1 of the batch has 2 for class 1');
        expect(above.message).to.contain('[0, 1]');
        const half = thrown(() => tf.tidy(() => loss(tf.tensor2d([[1, 0, 0], [0, 1, 0], [0, 0.5, 0], [1, 0, 0]]), logits())));
        expect(half.code).to.equal('TAPFIT_E_LABELS');
        expect(half.message).to.contain('label row of sample 2 of the batch sums to 0.5');
      });

      it('names both class counts when one-hot labels have the wrong width', () => {
        const err = thrown(() => tf.tidy(() => loss(tf.oneHot(tf.tensor1d([0, 1, 2, 3], 'int32'), 4), logits())));
        expect(err.code).to.equal('TAPFIT_E_LABELS');
        expect(err.message).to.contain('have 4 classes (shape [4,4]) but the model outputs 3');
      });

      it('accepts soft labels (label smoothing) and gives the loss of those probabilities', () => {
        const smooth = tf.tensor2d([[0.9, 0.05, 0.05], [0.05, 0.9, 0.05], [0.05, 0.05, 0.9], [1 / 3, 1 / 3, 1 / 3]]);
        const got = tf.tidy(() => loss(smooth, logits()).dataSync()[0]);
        const p = tf.softmax(logits()).arraySync() as number[][];
        const q = smooth.arraySync() as number[][];
        const expected = q.reduce((s, row, i) => s - row.reduce((t, qi, j) => t + qi * Math.log(p[i][j]), 0), 0) / q.length;
        expect(got).to.be.closeTo(expected, 1e-5);
      });

      it('still gives the loss of valid class indices', () => {
        const got = tf.tidy(() => loss(tf.tensor1d([0, 1, 2, 0], 'int32'), logits()).dataSync()[0]);
        const p = tf.softmax(logits()).arraySync() as number[][];
        expect(got).to.be.closeTo(-[0, 1, 2, 0].reduce((s, c, i) => s + Math.log(p[i][c]), 0) / 4, 1e-5);
      });
    });
  }

  it('accuracy rejects out-of-range class indices but leaves same-rank targets alone', () => {
    const err = thrown(() => accuracy.fn(tf.tensor1d([0, 1, 3, 0], 'int32'), logits()));
    expect(err.code).to.equal('TAPFIT_E_LABELS');
    expect(err.message).to.contain('sample 2 of the batch has class index 3');
    // same-rank targets (regression values, or [N, 1]): not refused
    expect(() => accuracy.fn(tf.tensor2d([[3.7], [-2]]), tf.tensor2d([[1], [2]])).dispose()).to.not.throw();
  });

  it('Trainer.fit checks in-memory labels once, on the host, before the first step', async () => {
    const y = Array.from({ length: 32 }, (_, i) => i % 3);
    y[17] = 3;
    const data = arrayData({ x: Array.from({ length: 32 }, (_, i) => [i % 3, 1, 0, 0]), y });
    const started: string[] = [];
    const t = tinyTrainer({ plugins: [{ name: 'watch', core: '^0.1.0', apply: (api) => api.hooks.fitStart.tap('watch', () => void started.push('fit')) }] });
    const err = await rejected(t.fit(data, { epochs: 1, batchSize: 8 }));
    expect(err.code).to.equal('TAPFIT_E_LABELS');
    expect(err.message).to.contain('sample 17 of the data has class index 3');
    expect(t.step).to.equal(0);
    expect(started).to.deep.equal([]); // refused before the run began
    const evalErr = await rejected(t.evaluate(data));
    expect(evalErr.message).to.contain('sample 17 of the data');
    t.dispose();
    data.dispose();
  });

  /** dataSync calls made by `f` (the blocking reads; an epoch's loss is read with data()). */
  const countReads = async (f: () => unknown): Promise<number> => (await recordHostReads(async () => f(), ['dataSync'])).length;

  it('Trainer.fit on valid in-memory labels reads no label back per step', async () => {
    const data = arrayData({ x: Array.from({ length: 32 }, (_, i) => [i % 3, 1, 0, 0]), y: Array.from({ length: 32 }, (_, i) => i % 3) });
    const t = tinyTrainer({ nonFinite: 'off' });
    await t.setup();
    const reads = await countReads(() => t.fit(data, { epochs: 2, batchSize: 8 }));
    expect(t.step).to.equal(8);
    expect(reads).to.equal(0);
    t.dispose();
    data.dispose();
  });

  it('evaluate(x, y) checks the labels once, not per batch (nor again for accuracy): one read for 16 batches, none the next time', async () => {
    const x = tf.tensor2d(Array.from({ length: 128 }, (_, i) => [i % 3, 1, 0, 0]));
    const y = tf.tensor1d(Array.from({ length: 128 }, (_, i) => i % 3), 'int32');
    const t = tinyTrainer({ metrics: ['accuracy'] });
    await t.setup();
    const run = () => tf.dispose(t.evaluate(x, y, { batchSize: 8 }) as tf.Scalar[]);
    expect(await countReads(run)).to.equal(1);
    expect(await countReads(run)).to.equal(0);
    const bad = tf.tensor1d(Array.from({ length: 128 }, (_, i) => (i === 77 ? 3 : i % 3)), 'int32');
    expect(() => t.evaluate(x, bad, { batchSize: 8 })).to.throw(/sample 77 of the labels has class index 3/);
    t.dispose();
    tf.dispose([x, y, bad]);
  });

  it('labels in a tf.Variable are checked again at each evaluate (assign() changes them)', async () => {
    const x = tf.tensor2d(Array.from({ length: 16 }, (_, i) => [i % 3, 1, 0, 0]));
    const y = tf.variable(tf.tensor1d(Array.from({ length: 16 }, (_, i) => i % 3), 'int32'));
    const t = tinyTrainer();
    await t.setup();
    (t.evaluate(x, y, { batchSize: 4 }) as tf.Scalar).dispose();
    y.assign(tf.tensor1d(Array.from({ length: 16 }, (_, i) => (i === 5 ? 3 : i % 3)), 'int32'));
    expect(() => t.evaluate(x, y, { batchSize: 4 })).to.throw(/sample 5 of the labels has class index 3/);
    t.dispose();
    tf.dispose([x, y]);
  });

  it('a batch from another source is read back once per step, whether or not accuracy checks it too', async () => {
    const elements = () => tf.data.array(Array.from({ length: 32 }, (_, i) => ({ xs: tf.tensor1d([i % 3, 1, 0, 0]), ys: tf.scalar(i % 3, 'int32') })));
    const readsWith = async (metrics: string[]) => {
      const t = tinyTrainer({ nonFinite: 'off', metrics });
      await t.setup();
      const reads = await countReads(() => t.fit(datasetData(elements()), { epochs: 1, batchSize: 8, shuffle: false }));
      t.dispose();
      return reads;
    };
    const plain = await readsWith([]);
    expect(plain).to.be.at.least(4); // the 4 batches' labels
    expect(await readsWith(['accuracy'])).to.equal(plain);
  });

  it('other sources are checked batch by batch, naming the sample of the batch', async () => {
    const xs = Array.from({ length: 12 }, (_, i) => [i % 3, 1, 0, 0]);
    const ys = Array.from({ length: 12 }, (_, i) => (i === 9 ? -1 : i % 3));
    const ds = tf.data.array(xs.map((x, i) => ({ xs: tf.tensor1d(x), ys: tf.scalar(ys[i], 'int32') })));
    const t = tinyTrainer({ model: tinyMlp() });
    const err = await rejected(t.fit(datasetData(ds), { epochs: 1, batchSize: 4, shuffle: false }));
    expect(err.code).to.equal('TAPFIT_E_LABELS');
    expect(err.message).to.contain('sample 1 of the batch has class index -1');
    expect(t.step).to.equal(2); // the batches before it trained
    t.dispose();
  });
});
