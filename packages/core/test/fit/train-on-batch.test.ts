// trainer.trainOnBatch(x, y): the port of model.trainOnBatch, checked against tfjs's own
// model.trainOnBatch on an identical model (same initial weights, same batches).

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { sgd, SilentLogger, tensorData, Trainer, type StepInfo, type TapfitPlugin, type TrainerOptions } from '../../src';
import { tmpDir, useBackend } from '../fixtures';
import { blobTensors, countReads, recordingLogger, softmaxModel } from './helpers';

const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

function expectClose(actual: number | number[], expected: number | number[], what: string, tol = 1e-6): void {
  const [a, e] = [[actual].flat(), [expected].flat()];
  expect(a.length, `${what}: values`).to.equal(e.length);
  a.forEach((v, i) => expect(v, `${what}[${i}]`).to.be.closeTo(e[i], tol * Math.max(1, Math.abs(e[i]))));
}

/** Batches of 8 cut from blobs of 40 samples: the same tensors for tfjs and the trainer. */
function batches(n = 5): { x: tf.Tensor; y: tf.Tensor }[] {
  const { x, y, labels } = blobTensors(8 * n);
  const out = Array.from({ length: n }, (_, i) => ({ x: x.slice(8 * i, 8), y: y.slice(8 * i, 8) }));
  tf.dispose([x, y, labels]);
  return out;
}

/** A plugin recording what its step hooks see. */
function recorder(): TapfitPlugin & { forward: StepInfo[]; backward: StepInfo[] } {
  const p = {
    name: 'recorder',
    core: '*',
    forward: [] as StepInfo[],
    backward: [] as StepInfo[],
    apply({ hooks }: Parameters<TapfitPlugin['apply']>[0]) {
      hooks.forward.tap('recorder', (pass, info) => {
        p.forward.push({ ...info });
        return pass;
      });
      hooks.backward.tap('recorder', (g, info) => {
        p.backward.push({ ...info });
        return g;
      });
    },
  };
  return p;
}

describe('trainer.trainOnBatch (model.trainOnBatch)', () => {
  useBackend('cpu');

  const cases: { name: string; compile: () => tf.ModelCompileArgs['optimizer']; optimizer: () => TrainerOptions['optimizer']; metrics: string[] }[] = [
    { name: 'sgd, with accuracy', compile: () => tf.train.sgd(0.2), optimizer: () => sgd({ lr: 0.2 }), metrics: ['accuracy'] },
    { name: "'adam' by name, no metrics", compile: () => 'adam', optimizer: () => 'adam', metrics: [] },
  ];
  for (const c of cases) {
    it(`${c.name}: each call's loss (and metrics, of the training forward before the update) and the weights after it equal model.trainOnBatch's`, async () => {
      const data = batches();
      const ref = softmaxModel();
      ref.compile({ optimizer: c.compile()!, loss: 'categoricalCrossentropy', metrics: c.metrics });
      const model = softmaxModel();
      const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: c.optimizer(), metrics: c.metrics, logger: new SilentLogger() });
      for (const [i, { x, y }] of data.entries()) {
        const want = await ref.trainOnBatch(x, y);
        const got = await t.trainOnBatch(x, y); // the first call sets the trainer up
        expect(typeof got, `call ${i}: a number without metrics, a list with them`).to.equal(typeof want);
        expectClose(got, want, `call ${i}`);
        const w = weights(ref);
        weights(model).forEach((v, k) => expectClose(v, w[k], `call ${i}, weight ${k}`, 1e-5));
      }
      expect(t.step).to.equal(data.length);
      expect(t.position).to.deep.equal({ epoch: 0, batch: 0 });
      t.dispose();
      model.dispose();
      ref.dispose();
      tf.dispose(data.flatMap((b) => [b.x, b.y]));
    });
  }

  it("runs the plugins' step hooks on each call, leaves the caller's tensors alone and leaks nothing", async () => {
    const [{ x, y }] = batches(1);
    const plugin = recorder();
    const model = softmaxModel();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), metrics: ['accuracy'], plugins: [plugin], logger: new SilentLogger() });
    await t.trainOnBatch(x, y); // sets up and makes the momentum slots
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await t.trainOnBatch(x, y); // a full-batch loop: the same tensors each call
    expect(tf.memory().numTensors, 'tensors left behind').to.equal(before);
    expect(x.isDisposed || y.isDisposed, "the caller's x and y").to.equal(false);
    const expected = [0, 1, 2, 3].map((i) => ({ epoch: 0, batch: i, step: i }));
    expect(plugin.forward).to.deep.equal(expected);
    expect(plugin.backward).to.deep.equal(expected);
    t.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  it('a checkpoint keeps the call count: after Trainer.resume the hooks see the batch the saved run would have seen next', async () => {
    const [{ x, y }] = batches(1);
    const dir = tmpDir();
    const first = recorder();
    const model = softmaxModel();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.1 }), plugins: [first], logger: new SilentLogger() });
    for (let i = 0; i < 3; i++) await t.trainOnBatch(x, y);
    await t.save(dir);
    await t.trainOnBatch(x, y); // the call a resumed run repeats
    const resumed = recorder();
    const again = softmaxModel();
    const r = await Trainer.resume(dir, { model: again, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.1 }), plugins: [resumed], logger: new SilentLogger() });
    await r.trainOnBatch(x, y);
    expect(resumed.forward, 'the resumed call').to.deep.equal([first.forward[3]]);
    expect(resumed.forward[0]).to.deep.equal({ epoch: 0, batch: 3, step: 3 });
    weights(again).forEach((v, k) => expectClose(v, weights(model)[k], `weight ${k} after the repeated call`));
    // A checkpoint written before the count was saved resumes at 0, as that run did.
    const file = path.join(dir, fs.readdirSync(dir).find((d) => fs.existsSync(path.join(dir, d, 'manifest.json')))!, 'manifest.json');
    const manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(manifest.trainOnBatchCalls).to.equal(3);
    delete manifest.trainOnBatchCalls;
    fs.writeFileSync(file, JSON.stringify(manifest));
    const old = recorder();
    const oldModel = softmaxModel();
    const o = await Trainer.resume(dir, { model: oldModel, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.1 }), plugins: [old], logger: new SilentLogger() });
    await o.trainOnBatch(x, y);
    expect(old.forward[0]).to.deep.equal({ epoch: 0, batch: 0, step: 3 });
    [t, r, o].forEach((tr) => tr.dispose());
    [model, again, oldModel].forEach((m) => m.dispose());
    tf.dispose([x, y]);
  });

  it("computes the metrics in the step's own forward: one forward, one metric call and one read-back per call", async () => {
    const [{ x, y }] = batches(1);
    const model = softmaxModel();
    let metricCalls = 0;
    const meanPred = { name: 'meanPred', fn: (_: tf.Tensor, yPred: tf.Tensor) => (metricCalls++, tf.mean(yPred) as tf.Scalar) };
    // meanSquaredError: no label check reading the batch on the host, so the one read is the result's.
    const t = new Trainer({ model, loss: 'meanSquaredError', optimizer: sgd({ lr: 0.2 }), metrics: [meanPred], nonFinite: 'off', logger: new SilentLogger() });
    await t.setup();
    const layer = model.layers[1] as unknown as { call: (...a: unknown[]) => unknown };
    const call = layer.call;
    let forwards = 0;
    layer.call = function (this: unknown, ...a: unknown[]) {
      forwards++;
      return call.apply(this, a);
    };
    const expected = tf.tidy(() => tf.mean(model.predict(x) as tf.Tensor).dataSync()[0]); // the weights before the update
    forwards = 0;
    let got: unknown;
    const reads = await countReads(async () => void (got = await t.trainOnBatch(x, y)));
    layer.call = call;
    expect({ forwards, metricCalls, reads }).to.deep.equal({ forwards: 1, metricCalls: 1, reads: 1 });
    expect((got as number[])[1]).to.be.closeTo(expected, 1e-6);
    t.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  it('takes arrays as model.fit reads them (a flat list of whole numbers is class indices)', async () => {
    const [{ x, y }] = batches(1);
    const indices = Array.from(tf.tidy(() => tf.argMax(y, 1)).dataSync());
    const runs: number[][] = [];
    for (const args of [[x, tf.tensor1d(indices, 'int32')], [x.arraySync(), indices]] as const) {
      const model = softmaxModel();
      const t = new Trainer({ model, loss: 'sparseCategoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), logger: new SilentLogger() });
      await t.trainOnBatch(args[0] as tf.Tensor, args[1] as tf.Tensor);
      runs.push(weights(model).flat());
      t.dispose();
      model.dispose();
      if (args[1] instanceof tf.Tensor) args[1].dispose();
    }
    expect(runs[1]).to.deep.equal(runs[0]);
    tf.dispose([x, y]);
  });

  it('waits for an evaluation that swapped weights in (an EMA plugin, evaluate(data) not awaited): the update goes to the training weights', async () => {
    const [{ x, y }] = batches(1);
    const events: string[] = [];
    const swapper: TapfitPlugin = {
      name: 'swapper',
      core: '*',
      apply: ({ hooks }) => {
        hooks.evaluateStart.tap('swapper', () => void events.push('swap in'));
        hooks.evaluateEnd.tap('swapper', () => void events.push('swap back'));
        hooks.forward.tap('swapper', (pass) => (events.push('train'), pass));
      },
    };
    const model = softmaxModel();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), plugins: [swapper], logger: new SilentLogger() });
    await t.setup();
    const data = tensorData(x, y);
    const evaluation = t.evaluate(data, { batchSize: 4 });
    await t.trainOnBatch(x, y);
    await evaluation;
    expect(events).to.deep.equal(['swap in', 'swap back', 'train']);
    data.dispose();
    t.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  it('warns once when the model was compiled again after the trainer was built, as fit does (the trainer keeps its own optimizer)', async () => {
    const [{ x, y }] = batches(1);
    const model = softmaxModel();
    model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy' });
    const logger = recordingLogger();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), logger });
    await t.trainOnBatch(x, y);
    model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
    await t.trainOnBatch(x, y);
    await t.trainOnBatch(x, y);
    expect(logger.lines.filter((l) => l.startsWith('warn:'))).to.have.length(1);
    expect(logger.lines.find((l) => l.startsWith('warn:'))).to.match(/^warn: trainOnBatch: model\.compile\(\) was called on the model after this trainer was built/);
    t.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  it('is refused while a fit runs on the trainer (its update would land inside the epoch), and on a disposed trainer', async () => {
    const [{ x, y }] = batches(1);
    const model = softmaxModel();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), logger: new SilentLogger() });
    const err = await t.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0, callbacks: { onBatchEnd: () => t.trainOnBatch(x, y) } }).then(
      () => expect.fail('fit resolved'),
      (e: Error & { code?: string }) => e,
    );
    expect(err.code).to.equal('TAPFIT_E_STATE');
    expect(err.message).to.contain('trainOnBatch() was called while fit() runs on this trainer').and.contain('Await the fit');
    // The oracle: tfjs lets model.trainOnBatch run inside model.fit, and the refusal says it is tapfit's.
    const ref = softmaxModel();
    ref.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy' });
    let inside: unknown;
    await ref.fit(x, y, { epochs: 1, batchSize: 4, verbose: 0, callbacks: { onBatchEnd: async () => void (inside ??= await ref.trainOnBatch(x, y)) } });
    expect(inside, 'model.trainOnBatch inside model.fit').to.be.a('number');
    expect(err.message).to.contain('model.trainOnBatch allows this; tapfit refuses it');
    ref.dispose();
    expect(t.step).to.equal(1); // fit's first step only
    t.dispose();
    const disposed = await t.trainOnBatch(x, y).then(() => expect.fail('accepted'), (e: Error & { code?: string }) => e);
    expect(disposed.code).to.equal('TAPFIT_E_STATE');
    model.dispose();
    tf.dispose([x, y]);
  });

  it('an x without its batch axis (one sample) is named as such, before the sample counts are compared, as is an x of the wrong width; nothing trains or leaks', async () => {
    const [{ x, y }] = batches(1);
    const model = softmaxModel();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), logger: new SilentLogger() });
    await t.setup();
    const sample = x.slice(0, 1).reshape([4]); // [4] for a model of inputShape [4]
    const label = y.slice(0, 1).reshape([3]);
    const wide = tf.zeros([8, 3]);
    // The oracle: tfjs refuses both too (its message speaks of tensor shapes, not of sample counts).
    const ref = softmaxModel();
    ref.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy' });
    for (const bad of [sample, wide]) await ref.trainOnBatch(bad, bad === sample ? label : y).then(() => expect.fail('tfjs accepted'), (e: Error) => expect(e.message).to.match(/shape/));
    ref.dispose();
    const before = { tensors: tf.memory().numTensors, weights: JSON.stringify(weights(model)) };
    const refused = async (bx: tf.Tensor, by: tf.Tensor) => t.trainOnBatch(bx, by).then(() => expect.fail('accepted'), (e: Error & { code?: string }) => e);
    const one = await refused(sample, label);
    expect(one.code).to.equal('TAPFIT_E_SHAPE');
    expect(one.message).to.contain('trainOnBatch: x has shape [4], but the model takes [batch, 4]').and.contain('x.expandDims(0)').and.not.contain('samples but');
    const w = await refused(wide, y);
    expect(w.code).to.equal('TAPFIT_E_SHAPE');
    expect(w.message).to.contain('trainOnBatch: x has shape [8,3], but the model takes [batch, 4]').and.not.contain('expandDims');
    expect(t.step).to.equal(0);
    expect(JSON.stringify(weights(model)), 'weights').to.equal(before.weights);
    expect(tf.memory().numTensors, 'tensors left').to.equal(before.tensors);
    t.dispose();
    model.dispose();
    tf.dispose([x, y, sample, label, wide]);
  });

  it("a call whose update a plugin holds back (a delayed-gradient warm-up) still resolves to the batch's loss; trainer.skipped counts it and trainer.step does not advance", async () => {
    const [{ x, y }] = batches(1);
    const model = softmaxModel();
    // As a delayed-gradient plugin's warm-up does: no update for the first two batches.
    const withhold: TapfitPlugin = { name: 'withhold', core: '*', apply: ({ hooks }) => void hooks.backward.tap('withhold', (g) => (t.skipped + t.step < 2 ? null : g)) };
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), plugins: [withhold], logger: new SilentLogger() });
    const ref = softmaxModel();
    ref.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy' });
    const before = JSON.stringify(weights(model));
    const seen: { loss: number; skipped: number; step: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const loss = (await t.trainOnBatch(x, y)) as number;
      seen.push({ loss, skipped: t.skipped, step: t.step });
    }
    // The oracle for the held-back calls: the unchanged model's loss on the batch (tfjs's own evaluate).
    const evaluated = ref.evaluate(x, y) as tf.Scalar;
    const unchanged = evaluated.dataSync()[0];
    evaluated.dispose();
    expectClose([seen[0].loss, seen[1].loss, seen[2].loss], [unchanged, unchanged, unchanged], 'losses');
    expect(seen.map((s) => [s.skipped, s.step])).to.deep.equal([[1, 0], [2, 0], [2, 1]]);
    expect(JSON.stringify(weights(model)), 'weights after the calls held back, then one update').to.not.equal(before);
    await ref.trainOnBatch(x, y); // the one update that was applied
    const w = weights(ref);
    weights(model).forEach((v, k) => expectClose(v, w[k], `weight ${k}`, 1e-5));
    t.dispose();
    model.dispose();
    ref.dispose();
    tf.dispose([x, y]);
  });
});
