// How often fit opens a tf.data dataset, and what it reads to check it: as model.fitDataset.
// A tf.data iterator cannot be closed, so one opened only to look at the first element keeps
// the buffer of a ds.shuffle(n) upstream of it, and a ds.shuffle draws a new order at each
// open: an extra open would leak and change the order trained on. The oracle is tfjs's own
// model.fitDataset on the same model and an identically built dataset.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { datasetData, sgd, Trainer, type History } from '../../src';
import { useBackend } from '../fixtures';
import { blobTensors, expectHistoryClose, softmaxModel } from './helpers';

type Rows = { xs: number[][]; ys: number[][] };

function rows(n: number, seed = 1): Rows {
  const { x, y, labels } = blobTensors(n, seed);
  const out = { xs: x.arraySync(), ys: y.arraySync() };
  tf.dispose([x, y, labels]);
  return out;
}

/** tfjs-examples' habit: elements made tensors by a map, then shuffled (the buffer holds tensors). */
const shuffledSamples = (r: Rows, buffer: number, seed: string) =>
  tf.data
    .array(r.xs.map((x, i) => ({ x, y: r.ys[i] })))
    .map((e) => ({ xs: tf.tensor1d(e.x), ys: tf.tensor1d(e.y) }))
    .shuffle(buffer, seed) as tf.data.Dataset<{ xs: tf.Tensor; ys: tf.Tensor }>;

/** The dataset, counting its opens (iterator() calls) in `opens.n`. */
function counted<T extends tf.TensorContainer>(ds: tf.data.Dataset<T>): { ds: tf.data.Dataset<T>; opens: { n: number } } {
  const opens = { n: 0 };
  const open = ds.iterator.bind(ds);
  ds.iterator = () => {
    opens.n++;
    return open();
  };
  return { ds, opens };
}

const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

function expectSameWeights(got: tf.LayersModel, want: tf.LayersModel): void {
  const w = weights(want);
  weights(got).forEach((v, i) => v.forEach((a, j) => expect(a, `weight ${i}[${j}]`).to.be.closeTo(w[i][j], 1e-6)));
}

describe('fit opens a dataset as model.fitDataset does', () => {
  useBackend('cpu');

  const trainer = (model: tf.LayersModel) => new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), metrics: ['accuracy'] });

  async function reference(ds: tf.data.Dataset<tf.TensorContainer>, args: tf.ModelFitDatasetArgs<tf.TensorContainer>) {
    const model = softmaxModel();
    model.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const history = await model.fitDataset(ds, { verbose: 0, ...args });
    return { model, history };
  }

  it('fitDataset over a shuffle of tensors leaves nothing behind, call after call, as model.fitDataset; so do a shuffled validation dataset, fit(datasetData) and evaluate(datasetData)', async () => {
    const r = rows(60);
    const v = rows(24, 2);
    const ref = softmaxModel();
    ref.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy' });
    const refStart = tf.memory().numTensors;
    for (let call = 0; call < 3; call++) await ref.fitDataset(shuffledSamples(r, 40, 'a').batch(16), { epochs: 1, verbose: 0 });
    const tfjsLeft = tf.memory().numTensors - refStart;
    expect(tfjsLeft, 'the oracle: model.fitDataset leaves nothing').to.equal(0);

    const model = softmaxModel();
    const t = trainer(model);
    await t.setup();
    const start = tf.memory().numTensors;

    for (let call = 0; call < 3; call++) {
      await t.fitDataset(shuffledSamples(r, 40, 'a').batch(16), { epochs: 1, verbose: 0, validationData: shuffledSamples(v, 20, 'v').batch(8) });
      expect(tf.memory().numTensors - start, `left after fitDataset call ${call}`).to.equal(tfjsLeft);
    }
    await t.fit(datasetData(shuffledSamples(r, 40, 'b')), { epochs: 2, batchSize: 16 });
    expect(tf.memory().numTensors - start, 'left after fit(datasetData(ds.shuffle(n)))').to.equal(0);
    await t.evaluate(datasetData(shuffledSamples(v, 20, 'c').batch(8), { batched: true }));
    expect(tf.memory().numTensors - start, 'left after evaluate(datasetData(..., { batched: true }))').to.equal(0);
    t.dispose();
    model.dispose();
    ref.dispose();
  });

  for (const batchesPerEpoch of [3, undefined]) {
    it(`a seeded ds.shuffle(n).batch(b).repeat()${batchesPerEpoch ? ' with batchesPerEpoch' : ''}: model.fitDataset's history and weights, the dataset (and its shuffled validation dataset) opened as often`, async () => {
      const r = rows(40);
      const v = rows(18, 2);
      const make = () => {
        const train = counted(shuffledSamples(r, 40, 's').batch(8).repeat(batchesPerEpoch ? undefined : 1));
        const val = counted(shuffledSamples(v, 18, 'v').batch(6));
        return { train, val, args: { epochs: 3, ...(batchesPerEpoch ? { batchesPerEpoch } : {}) } };
      };
      const a = make();
      const want = await reference(a.train.ds, { ...a.args, validationData: a.val.ds });
      const b = make();
      const model = softmaxModel();
      const t = trainer(model);
      const history: History = await t.fitDataset(b.train.ds, { ...b.args, verbose: 0, validationData: b.val.ds });
      expectHistoryClose(history.history, want.history.history as Record<string, number[]>, 1e-6);
      expectSameWeights(model, want.model);
      expect(b.train.opens.n, 'training dataset opens').to.equal(a.train.opens.n);
      expect(b.val.opens.n, 'validation dataset opens').to.equal(a.val.opens.n);
      t.dispose();
      model.dispose();
      want.model.dispose();
    });
  }

  it('a fit that fails before its first epoch frees the batch read to check the dataset', async () => {
    const r = rows(32);
    const model = softmaxModel();
    const t = trainer(model);
    await t.setup();
    const before = tf.memory().numTensors;
    const failing = { onTrainBegin: () => Promise.reject(new Error('callback failed')) };
    // No shuffle upstream: tf.data holds nothing between batches, so what is left would be the checked batch.
    const ds = tf.data.array(r.xs.map((x, i) => ({ x, y: r.ys[i] }))).map((e) => ({ xs: tf.tensor1d(e.x), ys: tf.tensor1d(e.y) })).batch(8);
    let err: unknown;
    await t.fitDataset(ds, { epochs: 1, verbose: 0, callbacks: failing }).catch((e) => (err = e));
    expect(String(err)).to.match(/callback failed/);
    expect(tf.memory().numTensors, 'tensors left').to.equal(before);
    t.dispose();
    model.dispose();
  });
});
