// batchesPerEpoch over data that runs out: every epoch begun is ended (hooks and callbacks),
// and the warning counts this fit's own batches and names a remedy that fits the source.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { datasetData, sgd, tensorData, Trainer, type TapfitPlugin } from '../../src';
import { useBackend } from '../fixtures';
import { blobTensors, recordingLogger, softmaxModel } from './helpers';

describe('batchesPerEpoch: data that runs out', () => {
  useBackend('cpu');

  /** A plugin that records epochStart / epochEnd, and can fail in epochStart of one epoch. */
  function epochTaps(events: string[], failAt?: number): TapfitPlugin {
    return {
      name: 'epoch-taps',
      core: '^0.1.0',
      apply: ({ hooks }) => {
        hooks.epochStart.tap('epoch-taps', ({ epoch }) => {
          if (epoch === failAt) throw new Error('epochStart failed');
          events.push(`start ${epoch}`);
        });
        hooks.epochEnd.tap('epoch-taps', ({ epoch }) => void events.push(`end ${epoch}`));
      },
    };
  }

  const trainer = (model: tf.LayersModel, plugins: TapfitPlugin[] = []) => {
    const logger = recordingLogger();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), logger, plugins });
    return { t, warnings: () => logger.lines.filter((l) => l.startsWith('warn:')) };
  };

  // The epoch after the data ended had its epochStart and onEpochBegin, and no end.
  it('every epochStart and onEpochBegin has its end, at the epoch boundary and inside an epoch; the epochs begun are those that trained, as model.fitDataset logs them', async () => {
    const { x, y, labels } = blobTensors(40);
    const [xs, ys] = [tf.unstack(x), tf.unstack(y)];
    const batched = () => tf.data.zip({ xs: tf.data.array(xs), ys: tf.data.array(ys) }).batch(8); // 5 batches
    // 4 x 5: the data ends with epoch 0. 3 x 3: it ends inside epoch 1.
    for (const [epochs, batchesPerEpoch] of [[4, 5], [3, 3]]) {
      const reference = softmaxModel();
      reference.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy' });
      const warn = console.warn;
      console.warn = () => undefined;
      const expected = await reference.fitDataset(batched(), { epochs, batchesPerEpoch, verbose: 0 }).finally(() => (console.warn = warn));
      const trained = expected.epoch.filter((_, i) => i < expected.history.loss.length); // fitDataset's epochs with a loss

      const hooks: string[] = [];
      const callbacks: string[] = [];
      const model = softmaxModel();
      const { t, warnings } = trainer(model, [epochTaps(hooks)]);
      await t.setup();
      const before = tf.memory().numTensors;
      const h = await t.fit(datasetData(batched(), { batched: true }), {
        epochs,
        batchesPerEpoch,
        callbacks: { onEpochBegin: (e) => void callbacks.push(`start ${e}`), onEpochEnd: (e) => void callbacks.push(`end ${e}`) },
      });
      const paired = trained.flatMap((e) => [`start ${e}`, `end ${e}`]);
      expect(hooks, `${epochs} x ${batchesPerEpoch}: hooks`).to.deep.equal(paired);
      expect(callbacks, `${epochs} x ${batchesPerEpoch}: callbacks`).to.deep.equal(paired);
      expect(h.epoch).to.deep.equal(trained);
      expect(warnings()).to.have.length(1);
      expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
      t.dispose();
      model.dispose();
      reference.dispose();
    }
    tf.dispose([x, y, labels, ...xs, ...ys]);
  });

  it('a fit that fails as an epoch opens frees the batch read ahead to tell whether the data had more', async () => {
    const { x, y, labels } = blobTensors(40);
    const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(8);
    const model = softmaxModel();
    const { t } = trainer(model, [epochTaps([], 1)]);
    await t.setup();
    const before = tf.memory().numTensors;
    const err = await t.fit(datasetData(batched.repeat(), { batched: true }), { epochs: 3, batchesPerEpoch: 2 }).then(() => expect.fail('fit resolved'), (e: Error) => e);
    expect(err.message).to.match(/epochStart failed/);
    expect(t.step).to.equal(2);
    expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
    t.dispose();
    model.dispose();
    tf.dispose([x, y, labels]);
  });

  it("the warning counts the batches this fit needs (its own epochs: a second fit, initialEpoch, a continued epoch) and names a remedy for the source: ds.repeat() for a dataset, not for tensor data", async () => {
    const { x, y, labels } = blobTensors(100);
    const batchSize = 10;
    const passBatches = Math.ceil(100 / batchSize); // what one read of tensorData gives
    const batchesPerEpoch = 4;
    const model = softmaxModel();
    const { t, warnings } = trainer(model);
    const data = tensorData(x, y);
    /** One fit; its warning, checked against the count the fit's own span needs. */
    const fitAndWarning = async (options: { epochs: number; initialEpoch?: number }, stopAfter?: number) => {
      // Where this fit starts: the position, or a different initialEpoch's start.
      const from = options.initialEpoch === undefined || options.initialEpoch === t.position.epoch ? t.position : { epoch: options.initialEpoch, batch: 0 };
      const seen = warnings().length;
      const callbacks = stopAfter === undefined ? undefined : { onBatchEnd: (b: number) => void (b === stopAfter && t.stop()) };
      await t.fit(data, { ...options, batchSize, batchesPerEpoch, ...(callbacks ? { callbacks } : {}) });
      const final = options.initialEpoch !== undefined ? options.epochs : from.epoch + options.epochs;
      const needed = (final - from.epoch) * batchesPerEpoch - from.batch;
      const added = warnings().slice(seen);
      return { added, needed };
    };
    // A first fit: 4 epochs of 4 from epoch 0.
    let r = await fitAndWarning({ epochs: 4 });
    expect(r.added).to.have.length(1);
    expect(r.added[0]).to.contain(`This fit needs ${r.needed} batches (epochs 0 to 3, ${batchesPerEpoch} each) and the data gave ${passBatches}.`);
    // tensorData has no ds to repeat: the remedy is to leave batchesPerEpoch out or ask for less.
    expect(r.added[0]).to.not.match(/repeat\(\)/);
    expect(r.added[0]).to.match(/leave batchesPerEpoch out \(each epoch is then one pass over the data/);
    // A second fit of 3 epochs starts where the first stopped: it needs its own 3 epochs' batches.
    r = await fitAndWarning({ epochs: 3 });
    expect(r.added[0]).to.contain(`This fit needs ${r.needed} batches (epochs 3 to 5, ${batchesPerEpoch} each)`);
    expect(r.needed).to.equal(3 * batchesPerEpoch);
    // initialEpoch: epochs is the final epoch.
    r = await fitAndWarning({ initialEpoch: 7, epochs: 10 });
    expect(r.added[0]).to.contain(`This fit needs ${r.needed} batches (epochs 7 to 9, ${batchesPerEpoch} each)`);
    expect(r.needed).to.equal(3 * batchesPerEpoch);
    // A fit stopped inside an epoch, then continued: the continued epoch needs only what it has left.
    r = await fitAndWarning({ initialEpoch: 20, epochs: 21 }, 0);
    expect(r.added).to.have.length(0);
    expect(t.position.batch).to.equal(1);
    r = await fitAndWarning({ epochs: 3 });
    expect(r.added[0]).to.contain(`This fit needs ${r.needed} batches (epochs 20 to 22, ${batchesPerEpoch} each, less the 1 epoch 20 trained before it was stopped)`);
    expect(r.needed).to.equal(3 * batchesPerEpoch - 1);

    // A dataset: the remedy is ds.repeat().
    const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(batchSize);
    const ds = trainer(softmaxModel());
    await ds.t.fit(datasetData(batched, { batched: true }), { epochs: 4, batchesPerEpoch });
    expect(ds.warnings()).to.have.length(1);
    expect(ds.warnings()[0]).to.contain(`This fit needs ${4 * batchesPerEpoch} batches`).and.contain('datasetData(ds.repeat(), { batched: true })');
    ds.t.model.layersModel!.dispose();
    ds.t.dispose();
    t.dispose();
    model.dispose();
    tf.dispose([x, y, labels]);
  });
});
