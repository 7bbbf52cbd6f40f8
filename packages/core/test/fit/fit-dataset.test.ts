// A dataset made for model.fitDataset (batched) trains through datasetData as model.fitDataset
// trains on it: the remedy tapfit's shape error names must work (tf.data has no unbatch).

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { datasetData, sgd, SilentLogger, Trainer, type Batch, type CallbackHandlers } from '../../src';
import { useBackend } from '../fixtures';
import { blobTensors, expectHistoryClose, recordingLogger, softmaxModel } from './helpers';

describe('datasetData of a dataset batched for model.fitDataset', () => {
  useBackend('cpu');

  const trainer = (model: tf.LayersModel) => new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), metrics: ['accuracy'], logger: new SilentLogger() });

  it("the shape error's advice works: { batched: true }, or the dataset before .batch(), trains as model.fitDataset on the batched one (same history and weights)", async () => {
    const { x, y, labels } = blobTensors(40);
    const samples = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) });
    const batched = samples.batch(8);
    const reference = softmaxModel();
    reference.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const expected = await reference.fitDataset(batched, { epochs: 3, verbose: 0 });

    const refused = trainer(softmaxModel());
    const err = await refused.fit(datasetData(batched), { epochs: 1, batchSize: 8 }).then(() => expect.fail('a batched dataset was accepted'), (e: Error) => e);
    expect(err.message).to.contain('datasetData(ds, { batched: true })').and.contain('before its .batch() call');
    refused.dispose();

    for (const data of [datasetData(batched, { batched: true }), datasetData(samples)]) {
      const model = softmaxModel();
      const t = trainer(model);
      const h = await t.fit(data, { epochs: 3, batchSize: 8, shuffle: false });
      expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
      reference.getWeights().forEach((w, i) => expect(Array.from(model.getWeights()[i].dataSync()), `weight ${i}`).to.deep.equal(Array.from(w.dataSync())));
      t.dispose();
      model.dispose();
    }
    reference.dispose();
    tf.dispose([x, y, labels]);
  });

  it('without batchSize or shuffle, fit trains on the batches as they come, as model.fitDataset (its batch size, its order): the same history, weights and steps', async () => {
    const { x, y, labels } = blobTensors(44);
    const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(12); // 12, 12, 12, 8
    const reference = softmaxModel();
    reference.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const expected = await reference.fitDataset(batched, { epochs: 3, verbose: 0 });
    const model = softmaxModel();
    const t = trainer(model);
    const h = await t.fit(datasetData(batched, { batched: true }), { epochs: 3 }); // the port of fitDataset(ds, { epochs: 3 })
    expect(h.params.batchSize).to.equal(12);
    expect(t.step).to.equal(3 * 4);
    expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
    reference.getWeights().forEach((w, i) => expect(Array.from(model.getWeights()[i].dataSync()), `weight ${i}`).to.deep.equal(Array.from(w.dataSync())));
    // Given either option, fit batches and shuffles as it was told.
    const told = trainer(softmaxModel());
    const h2 = await told.fit(datasetData(batched, { batched: true }), { epochs: 1, batchSize: 4 });
    expect([h2.params.batchSize, told.step]).to.deep.equal([4, 11]);
    told.dispose();
    t.dispose();
    model.dispose();
    reference.dispose();
    tf.dispose([x, y, labels]);
  });

  describe("model.fitDataset's batchesPerEpoch and validationBatches", () => {
    /** model.fitDataset on a fresh model, its console.warn (the data ran out) caught. */
    async function fitDatasetReference(ds: tf.data.Dataset<tf.TensorContainer>, args: tf.ModelFitDatasetArgs<tf.TensorContainer>) {
      const reference = softmaxModel();
      reference.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
      const warned: string[] = [];
      const warn = console.warn;
      console.warn = (m: string) => void warned.push(m);
      try {
        const history = await reference.fitDataset(ds, { verbose: 0, ...args });
        return { reference, history, warned };
      } finally {
        console.warn = warn;
      }
    }
    const expectSameWeights = (model: tf.LayersModel, reference: tf.LayersModel) =>
      reference.getWeights().forEach((w, i) => expect(Array.from(model.getWeights()[i].dataSync()), `weight ${i}`).to.deep.equal(Array.from(w.dataSync())));

    it('reads the dataset on across epochs (not restarted each epoch), and validates on the first validationBatches batches: the history and weights of model.fitDataset', async () => {
      const { x, y, labels } = blobTensors(40);
      const { x: vx, y: vy, labels: vl } = blobTensors(30, 2);
      const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(8); // 5 batches
      const valBatched = tf.data.zip({ xs: tf.data.array(tf.unstack(vx)), ys: tf.data.array(tf.unstack(vy)) }).batch(6); // 5 batches, of another size
      // 3 batches an epoch from a 5-batch cycle: the epochs start at batches 0, 3, 1 (5 + 1), 4 of the dataset.
      const args = { epochs: 4, batchesPerEpoch: 3, validationBatches: 2 };
      const { reference, history: expected } = await fitDatasetReference(batched.repeat(), { ...args, validationData: valBatched });
      const model = softmaxModel();
      const t = trainer(model);
      const h = await t.fit(datasetData(batched.repeat(), { batched: true }), { ...args, validationData: datasetData(valBatched, { batched: true }) });
      expect(t.step).to.equal(12);
      expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
      expect(h.epoch).to.deep.equal(expected.epoch);
      expectSameWeights(model, reference);
      t.dispose();
      model.dispose();
      reference.dispose();
      tf.dispose([x, y, labels, vx, vy, vl]);
    });

    // fit cut a repeated dataset's stream into batches of the first one's size, so the short batch at each pass's end
    // was merged with the next pass's first samples (8,8,8,8,8,8 where fitDataset trains 8,8,8,8,8,2).
    it("a repeated dataset whose last batch is short: its batches as they come (the short one too), as model.fitDataset: the same batch sizes, history and weights", async () => {
      const { x, y, labels } = blobTensors(42);
      const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(8); // 5 x 8, then 2
      const args = { epochs: 4, batchesPerEpoch: 3 };
      const sizes = { fitDataset: [] as number[], fit: [] as number[] };
      const record = (into: number[]) => ({ onBatchEnd: (_: number, logs?: tf.Logs) => void into.push(logs!.size) });
      const { reference, history: expected } = await fitDatasetReference(batched.repeat(), { ...args, callbacks: record(sizes.fitDataset) });
      const model = softmaxModel();
      const t = trainer(model);
      await t.setup();
      const before = tf.memory().numTensors;
      const h = await t.fit(datasetData(batched.repeat(), { batched: true }), { ...args, callbacks: record(sizes.fit) });
      expect(sizes.fit).to.deep.equal(sizes.fitDataset);
      expect(sizes.fit).to.include(42 % 8); // the case this is about: a short batch inside the stream
      expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
      expectSameWeights(model, reference);
      expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
      t.dispose();
      model.dispose();
      reference.dispose();
      tf.dispose([x, y, labels]);
    });

    it("validationBatches counts a repeated validation dataset's batches as they come (its short batch too), as model.fitDataset's evaluateDataset: the same val_ history", async () => {
      const { x, y, labels } = blobTensors(40);
      const { x: vx, y: vy, labels: vl } = blobTensors(30, 2);
      const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(8);
      const valBatched = tf.data.zip({ xs: tf.data.array(tf.unstack(vx)), ys: tf.data.array(tf.unstack(vy)) }).batch(8).repeat(); // 8, 8, 8, 6, 8, ...
      const args = { epochs: 2, validationBatches: 5 };
      const { reference, history: expected } = await fitDatasetReference(batched, { ...args, validationData: valBatched });
      const model = softmaxModel();
      const t = trainer(model);
      const h = await t.fit(datasetData(batched, { batched: true }), { ...args, validationData: datasetData(valBatched, { batched: true }) });
      expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
      expectSameWeights(model, reference);
      t.dispose();
      model.dispose();
      reference.dispose();
      tf.dispose([x, y, labels, vx, vy, vl]);
    });

    it('a dataset shorter than epochs * batchesPerEpoch: the epoch it runs out in ends there unvalidated and training stops with a warning, as model.fitDataset (same history and weights); nothing leaks', async () => {
      const { x, y, labels } = blobTensors(40);
      const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(8); // 5 batches
      const validation = tf.data.zip({ xs: tf.data.array(tf.unstack(x.slice(0, 12))), ys: tf.data.array(tf.unstack(y.slice(0, 12))) }).batch(4);
      for (const [epochs, batchesPerEpoch] of [[3, 3], [4, 1 + 4]]) {
        // 3 x 3: epoch 1 has 2 of its 3 batches, epoch 2 none. 4 x 5: the data ends with epoch 0, and epoch 1 has nothing.
        const { reference, history: expected, warned } = await fitDatasetReference(batched, { epochs, batchesPerEpoch, validationData: validation });
        expect(warned.join('\n')).to.match(/ran out of data/);
        const model = softmaxModel();
        const logger = recordingLogger();
        const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), metrics: ['accuracy'], logger });
        await t.setup();
        const before = tf.memory().numTensors;
        const h = await t.fit(datasetData(batched, { batched: true }), { epochs, batchesPerEpoch, validationData: datasetData(validation, { batched: true }) });
        expect(t.step).to.equal(5);
        // fitDataset goes on through the epochs left, logging each as empty (no loss); fit stops: its epochs are those that trained.
        expect(h.epoch).to.deep.equal(expected.epoch.filter((_, i) => i < expected.history.loss.length));
        expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
        expectSameWeights(model, reference);
        expect(logger.lines.filter((l) => l.startsWith('warn:')).join('\n')).to.match(new RegExp(`batchesPerEpoch is ${batchesPerEpoch}, but the data ran out .*training stops there.*This fit needs ${epochs * batchesPerEpoch} batches.*ds\\.repeat\\(\\)`));
        expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
        t.dispose();
        model.dispose();
        reference.dispose();
      }
      tf.dispose([x, y, labels]);
    });

    it('a fit stopped mid-epoch frees what the carried dataset holds, and the next fit continues that epoch with the rest of its count', async () => {
      const { x, y, labels } = blobTensors(40);
      const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(8);
      const model = softmaxModel();
      const t = trainer(model);
      await t.setup();
      const before = tf.memory().numTensors;
      // Shuffled and re-batched at 6: the stop leaves a split dataset batch and a shuffle buffer to free.
      const options = { epochs: 2, batchesPerEpoch: 3, batchSize: 6, shuffle: true };
      await t.fit(datasetData(batched.repeat(), { batched: true, shuffleBuffer: 10 }), { ...options, callbacks: { onBatchEnd: (b: number) => void (b === 1 && t.stop()) } });
      expect([t.step, t.position.epoch, t.position.batch]).to.deep.equal([2, 0, 2]);
      expect(tf.memory().numTensors, 'tensors left behind by the stopped fit').to.equal(before);
      const h = await t.fit(datasetData(batched.repeat(), { batched: true, shuffleBuffer: 10 }), options);
      expect(t.step).to.equal(2 + 1 + 3); // epoch 0's last batch, then epoch 1's three
      expect(h.epoch).to.deep.equal([0, 1]);
      expect(tf.memory().numTensors, 'tensors left behind by the finished fit').to.equal(before);
      t.dispose();
      model.dispose();
      tf.dispose([x, y, labels]);
    });

    it('an epoch stopped under batchesPerEpoch continues where the stopped fit left the data, in the same process and through a checkpoint: the weights of an uninterrupted model.fitDataset', async () => {
      // 48 samples in batches of 8: 6 a pass, 3 an epoch. Stopped after epoch 1's second batch, the data's
      // fifth: the continued epoch must get the data's sixth batch (batch 5), not its first again.
      const { x, y, labels } = blobTensors(48);
      const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(8);
      const options = { epochs: 3, batchesPerEpoch: 3 };
      const reference = softmaxModel();
      reference.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
      await reference.fitDataset(batched.repeat(), { ...options, verbose: 0 });
      const expectReferenceWeights = (model: tf.LayersModel, what: string) =>
        reference.getWeights().forEach((w, i) => expect(Array.from(model.getWeights()[i].dataSync()), `${what}: weight ${i}`).to.deep.equal(Array.from(w.dataSync())));
      const stopInEpoch1 = (t: Trainer) => ({ onBatchEnd: (b: number) => void (t.position.epoch === 1 && b === 1 && t.stop()) });

      const model = softmaxModel();
      const t = trainer(model);
      await t.fit(datasetData(batched.repeat(), { batched: true }), { ...options, callbacks: stopInEpoch1(t) });
      expect([t.step, t.position.epoch, t.position.batch]).to.deep.equal([5, 1, 2]);
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-carried-'));
      await t.save(dir);
      // The unfinished epoch counts as this fit's first: epochs 1 (its last batch) and 2, as the reference's.
      await t.fit(datasetData(batched.repeat(), { batched: true }), { ...options, epochs: 2 });
      expect(t.step).to.equal(9);
      expectReferenceWeights(model, 'continued in the same process');

      const again = softmaxModel();
      const r = await Trainer.resume(dir, { model: again, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), metrics: ['accuracy'], logger: new SilentLogger() });
      expect(r.position.epochSoFar?.carriedRead, 'the checkpoint keeps where the data was').to.equal(5);
      await r.fit(datasetData(batched.repeat(), { batched: true }), options); // after a resume, epochs is the final epoch (the cut fit run again)
      expect(r.step).to.equal(9);
      expectReferenceWeights(again, 'resumed from the checkpoint');
      fs.rmSync(dir, { recursive: true, force: true });
      [t, r].forEach((tr) => tr.dispose());
      [model, again, reference].forEach((m) => m.dispose());
      tf.dispose([x, y, labels]);
    });

    it('fit(x, y) refuses batchesPerEpoch naming the form that does it, and ignores validationBatches without a validation data source with a warning naming it (model.fitDataset ignores it with [x, y] validation)', async () => {
      const { x, y, labels } = blobTensors(8);
      const logger = recordingLogger();
      const t = new Trainer({ model: softmaxModel(), loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), metrics: ['accuracy'], logger });
      const err = async (p: Promise<unknown>) => (await p.then(() => expect.fail('accepted'), (e: Error) => e)) as Error;
      expect((await err(t.fit(x, y, { batchesPerEpoch: 2 }))).message).to.match(/'batchesPerEpoch' is model\.fitDataset's.*fit\(datasetData\(ds, \{ batched: true \}\), \{ batchesPerEpoch \}\)/);
      expect(t.step).to.equal(0);
      const h = await t.fit(x, y, { validationBatches: 2, validationData: [x, y], batchSize: 4, verbose: 0 });
      expect(h.history.val_loss, 'validated on all of [x, y]').to.have.length(1);
      expect(logger.lines.filter((l) => l.startsWith('warn: '))).to.deep.equal([
        "warn: fit: option 'validationBatches' is ignored: it limits a validation dataset (validationData: datasetData(valDs, { batched: true })), as model.fitDataset applies it; validation on [x, y] runs over all of it, as model.fitDataset's does.",
      ]);
      t.model.layersModel!.dispose();
      t.dispose();
      tf.dispose([x, y, labels]);
    });
  });

  it("a fit stopped inside an epoch of the dataset's own batches continues at its next batch: the same weights as an uninterrupted model.fitDataset; nothing leaks", async () => {
    const { x, y, labels } = blobTensors(44);
    const batched = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(12); // 12, 12, 12, 8
    const reference = softmaxModel();
    reference.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    await reference.fitDataset(batched, { epochs: 2, verbose: 0 });
    const model = softmaxModel();
    const t = trainer(model);
    await t.setup();
    const before = tf.memory().numTensors;
    await t.fit(datasetData(batched, { batched: true }), { epochs: 2, callbacks: { onBatchEnd: (b: number) => void (b === 1 && t.stop()) } });
    expect([t.position.epoch, t.position.batch]).to.deep.equal([0, 2]);
    await t.fit(datasetData(batched, { batched: true }), { epochs: 2 }); // the unfinished epoch counts as the first
    expect(t.step).to.equal(2 * 4);
    reference.getWeights().forEach((w, i) => expect(Array.from(model.getWeights()[i].dataSync()), `weight ${i}`).to.deep.equal(Array.from(w.dataSync())));
    expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
    t.dispose();
    model.dispose();
    reference.dispose();
    tf.dispose([x, y, labels]);
  });

  it("taken as they come, each batch is checked against the first: one of another sample shape is named (TAPFIT_E_SHAPE) and freed", async () => {
    const t = trainer(softmaxModel());
    await t.setup();
    const before = tf.memory().numTensors;
    const batch = (features: number) => tf.tidy(() => ({ xs: tf.ones([8, features]), ys: tf.oneHot(tf.zeros([8], 'int32'), 3) }));
    const ds = tf.data.generator(function* () {
      yield batch(4);
      yield batch(5);
    });
    const err = await t.fit(datasetData(ds, { batched: true }), { epochs: 1 }).then(() => expect.fail('accepted'), (e: Error & { code?: string }) => e);
    expect(err.code).to.equal('TAPFIT_E_SHAPE');
    expect(err.message).to.match(/batch 1 is \{ xs: a tensor of shape \[8,5\], ys: a tensor of shape \[8,3\] \}, but its first batch was \{ xs: \[n,4\], ys: \[n,3\] \}/);
    expect(t.step).to.equal(1);
    expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
    t.dispose();
  });

  it('re-batches the samples at fit\'s batchSize, shuffles across batches and resumes at a batch; frees every batch it splits', async () => {
    const xs = Array.from({ length: 12 }, (_, i) => tf.tensor1d([i, -i]));
    const ys = Array.from({ length: 12 }, (_, i) => tf.scalar(i, 'int32'));
    const data = datasetData(tf.data.zip({ xs: tf.data.array(xs), ys: tf.data.array(ys) }).batch(5), { batched: true });
    const before = tf.memory().numTensors;
    const read = async (options: { shuffle: boolean; startBatch?: number; epoch?: number }) => {
      const it = data.batches({ batchSize: 4, seed: 3, epoch: options.epoch ?? 0, ...options }) as AsyncIterator<Batch>;
      const out: { x: number[][]; y: number[] }[] = [];
      for (let r = await it.next(); !r.done; r = await it.next()) {
        out.push({ x: r.value.x.arraySync() as number[][], y: Array.from(r.value.y.dataSync()) });
        tf.dispose([r.value.x, r.value.y]);
      }
      return out;
    };
    const ordered = await read({ shuffle: false });
    expect(ordered.map((b) => b.y)).to.deep.equal([[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]);
    expect(ordered[1].x[0]).to.deep.equal([4, -4]);
    expect((await read({ shuffle: false, startBatch: 2 })).map((b) => b.y)).to.deep.equal([[8, 9, 10, 11]]);
    const shuffled = (await read({ shuffle: true, epoch: 1 })).flatMap((b) => b.y);
    expect([...shuffled].sort((a, b) => a - b)).to.deep.equal(ordered.flatMap((b) => b.y));
    expect(shuffled).to.not.deep.equal(ordered.flatMap((b) => b.y));
    expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
    tf.dispose([...xs, ...ys]);
  });

  // The split batch's unread samples leaked on every stopped or failed fit: the samples were a tf.data dataset, whose
  // iterator cannot be closed, and the shuffle buffer did not close what it read from.
  it('a fit stopped or failed in the middle of a dataset batch frees the rest of that batch (shuffled or not; validation too)', async () => {
    const { x, y, labels } = blobTensors(20);
    const samples = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) });
    // fit's batches of 8 end inside the dataset's batches of 5, and a shuffle buffer of 3 stops reading inside one too;
    // the unbatched route is checked alongside.
    const sources = {
      batched: () => datasetData(samples.batch(5), { batched: true, shuffleBuffer: 3 }),
      unbatched: () => datasetData(samples, { shuffleBuffer: 3 }),
    };
    let lossCallsLeft = Infinity; // then the loss throws: a failing step
    const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) => {
      if (lossCallsLeft-- <= 0) throw new Error('step failed');
      return tf.metrics.categoricalCrossentropy(yTrue, yPred);
    };
    const fresh = async () => {
      const model = softmaxModel();
      const t = new Trainer({ model, loss, optimizer: sgd({ lr: 0.2 }), logger: new SilentLogger() });
      await t.setup();
      lossCallsLeft = Infinity;
      return { model, t, before: tf.memory().numTensors };
    };
    const ends: Record<string, (t: Trainer, model: tf.LayersModel) => CallbackHandlers> = {
      'stop()': (t) => ({ onBatchEnd: () => t.stop() }),
      stopTraining: (_, model) => ({ onBatchEnd: () => void (model.stopTraining = true) }),
      'a throwing callback': () => ({
        onBatchEnd: () => {
          throw new Error('callback failed');
        },
      }),
      'a failing step': () => ({ onBatchEnd: () => void (lossCallsLeft = 0) }),
    };
    for (const [route, data] of Object.entries(sources)) {
      for (const shuffle of [false, true]) {
        for (const [end, callbacks] of Object.entries(ends)) {
          const { model, t, before } = await fresh();
          await t.fit(data(), { epochs: 1, batchSize: 8, shuffle, callbacks: callbacks(t, model) }).catch((e: Error) => expect(e.message).to.match(/failed/));
          expect(t.step, `${route}, shuffle ${shuffle}, ${end}: steps`).to.equal(1);
          expect(tf.memory().numTensors, `${route}, shuffle ${shuffle}, ${end}: tensors left behind`).to.equal(before);
          t.dispose();
          model.dispose();
        }
        // Validation reads its data to the end unless a step fails: its second batch fails (after the epoch's 3 steps).
        const { model, t, before } = await fresh();
        const callbacks = { onBatchEnd: (b: number) => void (b === 2 && (lossCallsLeft = 1)) };
        const err = await t.fit(data(), { epochs: 1, batchSize: 8, shuffle, validationData: data(), callbacks }).then(
          () => expect.fail('fit resolved'),
          (e: Error) => e,
        );
        expect(err.message, `${route}, shuffle ${shuffle}: validation`).to.match(/step failed/);
        expect(t.step).to.equal(3);
        expect(tf.memory().numTensors, `${route}, shuffle ${shuffle}: tensors left behind by a failed validation`).to.equal(before);
        t.dispose();
        model.dispose();
      }
    }
    tf.dispose([x, y, labels]);
  });

  it('batched: true on elements that are not batches of tensors is an error naming them', async () => {
    const t = trainer(softmaxModel());
    const cases: [tf.data.Dataset<tf.TensorContainer>, RegExp][] = [
      [tf.data.array([{ xs: [1, 2, 3, 4], ys: [1, 0, 0] }]), /got \{ xs: an array of 4, ys: an array of 3 \}/],
      [tf.data.array([{ xs: tf.zeros([2, 4]), ys: tf.zeros([3, 3]) }]), /got \{ xs: a tensor of shape \[2,4\], ys: a tensor of shape \[3,3\] \}/],
    ];
    for (const [ds, got] of cases) {
      const err = await t.fit(datasetData(ds, { batched: true }), { epochs: 1 }).then(() => expect.fail('accepted'), (e: Error & { code?: string }) => e);
      expect(err.code).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.match(/^datasetData\(ds, \{ batched: true \}\): the dataset's elements must be batches \{ xs, ys \} of tensors/).and.match(got);
    }
    t.dispose();
  });
});
