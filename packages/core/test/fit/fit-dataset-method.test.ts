// trainer.fitDataset(ds, args): the port of model.fitDataset, checked against tfjs's own
// model.fitDataset on an identical model (same initial weights, same dataset).

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { datasetData, sgd, Trainer, type CallbackHandlers, type History, type Logs } from '../../src';
import { useBackend } from '../fixtures';
import { blobTensors, expectHistoryClose, recordingLogger, softmaxModel } from './helpers';

type Element = { xs: tf.Tensor; ys: tf.Tensor };

/** `{ xs, ys }` batches of `size` samples (the last one shorter when n is not a multiple). */
const batchedDataset = (x: tf.Tensor, y: tf.Tensor, size: number) => tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(size) as tf.data.Dataset<Element>;

const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

/** Each epoch's onEpochEnd logs as a callback receives them. */
function epochLogs(): { seen: [number, Logs][]; callbacks: CallbackHandlers } {
  const seen: [number, Logs][] = [];
  return { seen, callbacks: { onEpochEnd: (epoch, logs) => void seen.push([epoch, { ...logs }]) } };
}

/** model.fitDataset on a fresh copy of the model, compiled as the trainer is built. */
async function reference(ds: tf.data.Dataset<tf.TensorContainer>, args: tf.ModelFitDatasetArgs<tf.TensorContainer>) {
  const model = softmaxModel();
  model.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
  const { seen, callbacks } = epochLogs();
  const history = await model.fitDataset(ds, { verbose: 0, ...args, callbacks: callbacks as tf.CustomCallbackArgs });
  return { model, history, seen };
}

function expectSameRun(got: { model: tf.LayersModel; history: History; seen: [number, Logs][] }, want: Awaited<ReturnType<typeof reference>>): void {
  expect(got.history.epoch).to.deep.equal(want.history.epoch);
  expectHistoryClose(got.history.history, want.history.history as Record<string, number[]>, 1e-6);
  expect(got.seen.map(([e]) => e), 'epochs the callback saw').to.deep.equal(want.seen.map(([e]) => e));
  got.seen.forEach(([, logs], i) => expectHistoryClose(mapValues(logs), mapValues(want.seen[i][1]), 1e-6));
  const w = weights(want.model);
  weights(got.model).forEach((v, i) => v.forEach((a, j) => expect(a, `weight ${i}[${j}]`).to.be.closeTo(w[i][j], 1e-6)));
}

const mapValues = (logs: Logs) => Object.fromEntries(Object.entries(logs).map(([k, v]) => [k, [v as number]]));

describe('trainer.fitDataset (model.fitDataset)', () => {
  useBackend('cpu');

  const trainer = (model: tf.LayersModel, logger = recordingLogger()) =>
    new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), metrics: ['accuracy'], logger });

  async function run(ds: tf.data.Dataset<tf.TensorContainer>, args: Parameters<Trainer['fitDataset']>[1]) {
    const model = softmaxModel();
    const t = trainer(model);
    const { seen, callbacks } = epochLogs();
    const history = await t.fitDataset(ds, { verbose: 0, ...args, callbacks });
    return { model, history, seen, t };
  }

  it("trains on the dataset's batches as model.fitDataset does, validating on [x, y]: the same history, callback logs and weights; nothing leaks", async () => {
    const { x, y, labels } = blobTensors(44);
    const { x: vx, y: vy, labels: vl } = blobTensors(20, 2);
    const ds = batchedDataset(x, y, 12); // 12, 12, 12, 8
    const want = await reference(ds, { epochs: 3, validationData: [vx, vy] });
    const model = softmaxModel();
    const t = trainer(model);
    await t.setup();
    const before = tf.memory().numTensors;
    const { seen, callbacks } = epochLogs();
    const history = await t.fitDataset(ds, { epochs: 3, validationData: [vx, vy], verbose: 0, callbacks });
    expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
    expect(Object.keys(history.history).sort()).to.deep.equal(['acc', 'loss', 'val_acc', 'val_loss']);
    expect(t.step).to.equal(3 * 4);
    expectSameRun({ model, history, seen }, want);
    expect([x, y, vx, vy].some((v) => v.isDisposed), "the caller's tensors").to.equal(false);
    t.dispose();
    model.dispose();
    want.model.dispose();
    tf.dispose([x, y, labels, vx, vy, vl]);
  });

  it('batchesPerEpoch, validationBatches on a validation dataset and initialEpoch as model.fitDataset reads them', async () => {
    const { x, y, labels } = blobTensors(40);
    const { x: vx, y: vy, labels: vl } = blobTensors(30, 2);
    const ds = batchedDataset(x, y, 8).repeat(); // 5 batches, read on across epochs
    const valDs = batchedDataset(vx, vy, 6);
    const args = { epochs: 4, initialEpoch: 1, batchesPerEpoch: 3, validationBatches: 2 };
    const want = await reference(ds, { ...args, validationData: valDs });
    const got = await run(ds, { ...args, validationData: valDs });
    expect(got.history.epoch).to.deep.equal([1, 2, 3]);
    expect(got.t.step).to.equal(9);
    expectSameRun(got, want);
    got.t.dispose();
    got.model.dispose();
    want.model.dispose();
    tf.dispose([x, y, labels, vx, vy, vl]);
  });

  it('classWeight as model.fitDataset applies it', async () => {
    const { x, y, labels } = blobTensors(36);
    const ds = batchedDataset(x, y, 9);
    const args = { epochs: 2, classWeight: { 0: 1, 1: 4, 2: 0.5 } };
    const want = await reference(ds, args);
    const got = await run(ds, args);
    expectSameRun(got, want);
    got.t.dispose();
    got.model.dispose();
    want.model.dispose();
    tf.dispose([x, y, labels]);
  });

  // Beyond model.fitDataset (tfjs-layers 4.22 takes { xs, ys } only): batches zipped as a pair.
  it('a dataset of [xs, ys] batch pairs (tf.data.zip([xs.batch(n), ys.batch(n)])) trains as the same batches as { xs, ys }', async () => {
    const { x, y, labels } = blobTensors(32);
    const want = await reference(batchedDataset(x, y, 8), { epochs: 2 });
    const pairs = tf.data.zip([tf.data.array(tf.unstack(x)).batch(8), tf.data.array(tf.unstack(y)).batch(8)]);
    const got = await run(pairs, { epochs: 2 });
    expectSameRun(got, want);
    got.t.dispose();
    got.model.dispose();
    want.model.dispose();
    tf.dispose([x, y, labels]);
  });

  it("takes and ignores what model.fitDataset ignores, with a line saying so: yieldEvery, validationBatches with [x, y] validation or none; model.fitDataset's history and weights", async () => {
    const { x, y, labels } = blobTensors(24);
    const { x: vx, y: vy, labels: vl } = blobTensors(10, 2);
    const cases: { args: Record<string, unknown>; line: RegExp }[] = [
      { args: { yieldEvery: 'never' }, line: /^fit: option 'yieldEvery' \("never"\) is ignored: fit lets the event loop turn once a second between steps/ },
      { args: { yieldEvery: 50 }, line: /^fit: option 'yieldEvery' \(50\) is ignored/ },
      { args: { validationBatches: 1 }, line: /^warn: fit: option 'validationBatches' is ignored: no validationData was given\.$/ },
      { args: { validationBatches: 1, validationData: [vx, vy] }, line: /^warn: fit: option 'validationBatches' is ignored: .*validation on \[x, y\] runs over all of it, as model\.fitDataset's does\.$/ },
    ];
    for (const { args, line } of cases) {
      const want = await reference(batchedDataset(x, y, 8), { epochs: 2, ...args } as tf.ModelFitDatasetArgs<tf.TensorContainer>);
      const logger = recordingLogger();
      const model = softmaxModel();
      const t = trainer(model, logger);
      const { seen, callbacks } = epochLogs();
      const history = await t.fitDataset(batchedDataset(x, y, 8), { epochs: 2, verbose: 0, callbacks, ...args });
      expectSameRun({ model, history, seen }, want);
      expect(logger.lines, JSON.stringify(args)).to.have.length(1);
      expect(logger.lines[0], JSON.stringify(args)).to.match(line);
      t.dispose();
      model.dispose();
      want.model.dispose();
    }
    tf.dispose([x, y, labels, vx, vy, vl]);
  });

  it('logs one line per epoch by default, as model.fitDataset (verbose 1); verbose: 0 is silent', async () => {
    const { x, y, labels } = blobTensors(16);
    for (const [verbose, lines] of [[undefined, 2], [0, 0]] as const) {
      const logger = recordingLogger();
      const model = softmaxModel();
      const t = trainer(model, logger);
      await t.fitDataset(batchedDataset(x, y, 8), { epochs: 2, ...(verbose === undefined ? {} : { verbose }) });
      expect(logger.lines.filter((l) => /^Epoch \d+ \/ 2$/.test(l)), `verbose ${verbose}`).to.have.length(lines);
      t.dispose();
      model.dispose();
    }
    tf.dispose([x, y, labels]);
  });

  it("refuses what fit refuses with fit's messages, and fit's options that model.fitDataset does not have, naming the way to get them; nothing trains", async () => {
    const { x, y, labels } = blobTensors(16);
    const ds = batchedDataset(x, y, 8);
    const model = softmaxModel();
    const t = trainer(model);
    const err = async (p: Promise<unknown>) => (await p.then(() => expect.fail('accepted'), (e: Error & { code?: string }) => e)) as Error & { code?: string };
    for (const options of [{ validationBatchSize: 4 }, { stepsPerEpoch: 2 }, { yieldEvery: 'sometimes' }, { epochs: 0 }]) {
      const viaFit = await err(t.fit(datasetData(ds, { batched: true }), options as never));
      const viaFitDataset = await err(t.fitDataset(ds, options as never));
      expect(viaFitDataset.message, JSON.stringify(Object.keys(options))).to.equal(viaFit.message);
      expect(viaFitDataset.code).to.equal('TAPFIT_E_CONFIG');
    }
    const cases: [unknown, unknown, RegExp][] = [
      [ds, { batchSize: 4 }, /option 'batchSize' is not model\.fitDataset's: .*fit\(datasetData\(ds, \{ batched: true \}\), \{ batchSize \}\)/],
      [ds, { shuffle: true }, /option 'shuffle' is not model\.fitDataset's: .*ds\.shuffle\(n\)/],
      [ds, { validationSplit: 0.2 }, /option 'validationSplit' is not model\.fitDataset's: .*pass validationData/],
      [datasetData(ds, { batched: true }), {}, /got a tapfit data source; .*fit\(data, options\)/],
      [x, {}, /must be a tf\.data\.Dataset of batches \{ xs, ys \}.*fit\(x, y, options\)/],
      // An unbatched dataset (a sample of 4 features, its 3 one-hot labels): the error says to batch it.
      [tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }), {}, /must be batches \{ xs, ys \}.*got \{ xs: a tensor of shape \[4\], ys: a tensor of shape \[3\] \}.*batch it \(ds\.batch\(n\)\): trainer\.fitDataset, like model\.fitDataset, takes batches/],
    ];
    for (const [data, options, message] of cases) {
      const e = await err(t.fitDataset(data as never, options as never));
      expect(e.code).to.equal('TAPFIT_E_CONFIG');
      expect(e.message).to.match(message);
    }
    expect(t.step).to.equal(0);
    t.dispose();
    model.dispose();
    tf.dispose([x, y, labels]);
  });
});
