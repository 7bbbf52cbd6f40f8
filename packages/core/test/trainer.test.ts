import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, datasetData, fromLayersModel, isLayersAdapter, permutation, readParam, sgd, TapfitError, tensorData, Trainer, SilentLogger, segmentModel, type PluginApi, type Segment, type TapfitPlugin } from '../src';
import { recordHostReads } from '../src/testing';
import { blobTensors, softmaxModel } from './fit/helpers';
import { blobs, tinyMlp, tinyTrainer, useBackend } from './fixtures';

const plugin = (name: string, apply: (api: PluginApi) => void): TapfitPlugin => ({ name, core: '^0.1.0', apply });

describe('Trainer', () => {
  useBackend('cpu');

  it('trains: loss falls and accuracy rises on a separable problem', async () => {
    const data = blobs(96);
    const t = tinyTrainer({ metrics: ['accuracy'] });
    const before = await t.evaluate(data);
    const history = await t.fit(data, { epochs: 8, batchSize: 16 });
    const after = await t.evaluate(data);
    expect(history.epoch).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(history.history.loss[7]).to.be.lessThan(history.history.loss[0]);
    expect(history.history.acc[7]).to.be.greaterThan(0.9);
    expect(after.loss).to.be.lessThan(before.loss * 0.5);
    expect(after.acc).to.be.greaterThan(0.95);
    expect(t.step).to.equal(8 * 6);
    t.dispose();
    data.dispose();
  });

  it('runs the per-step hooks in order: batchStart, forward, backward, batchEnd', async () => {
    const calls: string[] = [];
    const data = blobs(16);
    const t = tinyTrainer({
      plugins: [
        plugin('spy', ({ hooks }) => {
          hooks.fitStart.tap('spy', () => void calls.push('fitStart'));
          hooks.epochStart.tap('spy', () => void calls.push('epochStart'));
          hooks.batchStart.tap('spy', () => void calls.push('batchStart'));
          hooks.forward.tap('spy', (pass) => (calls.push(`forward(training=${pass.ctx.training})`), pass));
          hooks.backward.tap('spy', (g) => (calls.push(`backward(${Object.keys(g!).length} grads)`), g));
          hooks.batchEnd.tap('spy', () => void calls.push('batchEnd'));
          hooks.epochEnd.tap('spy', ({ logs }) => void calls.push(`epochEnd(loss=${Number.isFinite(logs.loss)})`));
          hooks.fitEnd.tap('spy', ({ history }) => void calls.push(`fitEnd(${history.epoch.length})`));
        }),
      ],
    });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    const step = ['batchStart', 'forward(training=true)', 'backward(4 grads)', 'batchEnd'];
    expect(calls).to.deep.equal(['fitStart', 'epochStart', ...step, ...step, 'epochEnd(loss=true)', 'fitEnd(1)']);
    t.dispose();
    data.dispose();
  });

  it('500 steps leave tf.memory().numTensors where it was', async () => {
    const data = blobs(64);
    const t = tinyTrainer({ plugins: [plugin('reader', ({ hooks }) => hooks.batchEnd.tap('reader', (i) => void i.loss()))] });
    await t.setup();
    const before = tf.memory().numTensors;
    await t.fit(data, { epochs: 125, batchSize: 16 });
    expect(t.step).to.equal(500);
    expect(tf.memory().numTensors).to.equal(before);
    t.dispose();
    data.dispose();
  });

  it('same seed, same model: identical weights (seeded shuffling)', async () => {
    const run = async (seed: number) => {
      const data = blobs(48);
      const t = tinyTrainer({ model: tinyMlp(3), seed });
      await t.fit(data, { epochs: 2, batchSize: 8 });
      const w = Object.values(t.variables).map((v) => Array.from(v.dataSync()));
      t.dispose();
      data.dispose();
      return w;
    };
    const a = await run(7);
    expect(await run(7)).to.deep.equal(a);
    expect(await run(8)).to.not.deep.equal(a);
  });

  it('a black-box tf.train optimizer trains too', async () => {
    const data = blobs(48);
    const t = tinyTrainer({ optimizer: tf.train.adam(0.05) });
    const h = await t.fit(data, { epochs: 5, batchSize: 16 });
    expect(h.history.loss[4]).to.be.lessThan(h.history.loss[0]);
    expect(t.describe({ print: false }).optimizer).to.equal('Adam');
    t.dispose();
    data.dispose();
  });

  it('a plugin that needs the transform chain fails clearly with a black-box optimizer', async () => {
    const t = tinyTrainer({
      optimizer: tf.train.sgd(0.1),
      plugins: [plugin('braking', ({ hooks }) => hooks.stepTransforms.tap('braking', (ts) => ts))],
    });
    let err: unknown;
    await t.setup().catch((e) => (err = e));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal('TAPFIT_E_NEEDS_CHAIN');
    expect((err as Error).message).to.match(/braking.*sgd\(\{ lr, momentum \}\)/);
  });

  it('stepTransforms taps see the chain members by name and may replace them', async () => {
    const data = blobs(16);
    let seen: string[] = [];
    const t = tinyTrainer({
      optimizer: sgd({ lr: 0.1, momentum: 0.9 }),
      plugins: [
        plugin('frozen-lr', ({ hooks }) =>
          hooks.stepTransforms.tap('frozen-lr', (ts) => {
            seen = ts.map((x) => x.name);
            return ts.map((x) => (x.name === 'lr' ? { name: 'lr', init: () => ({}), update: (u) => [Object.fromEntries(Object.keys(u).map((k) => [k, tf.zerosLike(u[k])])), {}] } : x));
          }),
        ),
      ],
    });
    await t.setup();
    const w0 = Object.values(t.variables).map((v) => Array.from(v.dataSync()));
    await t.fit(data, { epochs: 1, batchSize: 8 });
    expect(seen).to.deep.equal(['momentum', 'lr']);
    expect(Object.values(t.variables).map((v) => Array.from(v.dataSync()))).to.deep.equal(w0);
    expect(Object.keys(t.optimizerState!)).to.deep.equal(['momentum', 'lr']);
    t.dispose();
    data.dispose();
  });

  it('a backward tap returning null skips the update and counts it', async () => {
    const data = blobs(32);
    const t = tinyTrainer({ plugins: [plugin('skipper', ({ hooks }) => hooks.backward.tap('skipper', (g, info) => (info.batch % 2 ? null : g)))] });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    expect(t.step).to.equal(2);
    expect(t.skipped).to.equal(2);
    t.dispose();
    data.dispose();
  });

  describe('non-finite loss', () => {
    const poisoned = () => {
      const x = new Float32Array(32 * 4).map((_, i) => (i % 7) / 7);
      x[4 * 9] = NaN; // sample 9 is poisoned
      return arrayData({ x, y: Int32Array.from({ length: 32 }, (_, i) => i % 3), xShape: [4] });
    };

    it("'throw' names the step and applies nothing", async () => {
      const data = poisoned();
      const t = tinyTrainer();
      let err: unknown;
      await t.fit(data, { epochs: 1, batchSize: 8, shuffle: false }).catch((e) => (err = e));
      expect((err as TapfitError).code).to.equal('TAPFIT_E_NON_FINITE');
      expect((err as Error).message).to.match(/at step 1 \(epoch 0, batch 1\)/);
      expect(t.step).to.equal(1);
      for (const v of Object.values(t.variables)) expect(Array.from(v.dataSync()).every(Number.isFinite)).to.equal(true);
      t.dispose();
      data.dispose();
    });

    it("'skip' skips the step, counts it and keeps training", async () => {
      const data = poisoned();
      const t = tinyTrainer({ nonFinite: 'skip' });
      await t.fit(data, { epochs: 2, batchSize: 8, shuffle: false });
      expect(t.skipped).to.equal(2);
      expect(t.step).to.equal(6);
      for (const v of Object.values(t.variables)) expect(Array.from(v.dataSync()).every(Number.isFinite)).to.equal(true);
      t.dispose();
      data.dispose();
    });
  });

  it("reads nothing back per step with nonFinite: 'off' and no taps", async () => {
    const data = blobs(32);
    const t = tinyTrainer({ nonFinite: 'off' });
    await t.setup();
    const reads = await recordHostReads(() => t.fit(data, { epochs: 2, batchSize: 4 }));
    expect(t.step).to.equal(16);
    expect(reads.length).to.equal(3); // one per epoch (the epoch's mean loss), and the labels once for the label check (given tensors stay on the device until then)
    t.dispose();
    data.dispose();
  });

  it('rejects data whose sample shape does not fit the model, naming both shapes', async () => {
    const data = arrayData({ x: new Float32Array(10 * 5), y: new Int32Array(10), xShape: [5] });
    const t = tinyTrainer();
    let err: unknown;
    await t.fit(data, { epochs: 1 }).catch((e) => (err = e));
    expect((err as Error).message).to.match(/model expects samples of shape \[4\] but the data has \[5\]/);
    data.dispose();
  });

  it('validates fit options with the option path', async () => {
    const t = tinyTrainer();
    const data = blobs(8);
    let err: unknown;
    await t.fit(data, { epochs: 0 }).catch((e) => (err = e));
    expect((err as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
    expect((err as Error).message).to.match(/epochs/);
    data.dispose();
  });

  it('refuses unknown fit options, naming the nearest valid one', async () => {
    const t = tinyTrainer();
    const data = blobs(8);
    const err = await t.fit(data, { epochs: 1, bathSize: 4 } as never).catch((e: TapfitError) => e);
    expect((err as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
    expect((err as TapfitError).message).to.match(/unknown option\(s\) 'bathSize' \(did you mean 'batchSize'\?\)/);
    expect(t.step).to.equal(0);
    t.dispose();
    data.dispose();
  });

  it('an empty data source is an error in fit, as in evaluate', async () => {
    const t = tinyTrainer();
    const empty = { xShape: [4], batches: function* () {} };
    const err = await t.fit(empty, { epochs: 2 }).catch((e: TapfitError) => e);
    expect((err as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
    expect((err as TapfitError).message).to.match(/fit: the data produced no batches in epoch 0/);
    t.dispose();
  });

  // A step of evaluate(data), or of fit's validation, that threw left its batch allocated.
  it("evaluate(data) and fit's validation free the batch of a step that fails", async () => {
    const { x, y, labels } = blobTensors(20);
    const data = tensorData(x, y);
    let lossCallsLeft = Infinity; // then the loss throws: a failing step
    const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) => {
      if (lossCallsLeft-- <= 0) throw new Error('step failed');
      return tf.metrics.categoricalCrossentropy(yTrue, yPred);
    };
    const model = softmaxModel();
    const t = new Trainer({ model, loss, optimizer: sgd({ lr: 0.2 }), logger: new SilentLogger() });
    await t.setup();
    const before = tf.memory().numTensors;
    lossCallsLeft = 1;
    const err = await t.evaluate(data, { batchSize: 8 }).then(() => expect.fail('evaluate resolved'), (e: Error) => e);
    expect(err.message).to.match(/step failed/);
    expect(tf.memory().numTensors, 'after evaluate').to.equal(before);

    lossCallsLeft = Infinity;
    const callbacks = { onBatchEnd: (b: number) => void (b === 2 && (lossCallsLeft = 1)) }; // the epoch's last step: validation's second fails
    const failed = await t.fit(data, { epochs: 1, batchSize: 8, validationData: data, callbacks }).then(() => expect.fail('fit resolved'), (e: Error) => e);
    expect(failed.message).to.match(/step failed/);
    expect(t.step).to.equal(3);
    expect(tf.memory().numTensors, 'after a failed validation').to.equal(before);
    t.dispose();
    model.dispose();
    tf.dispose([x, y, labels]);
  });

  it('warns when fit uses another batch size than the memory plan was measured at', async () => {
    const warnings: string[] = [];
    const sample = { x: tf.randomNormal([4, 4]), y: tf.tensor1d([0, 1, 2, 0], 'int32') };
    const t = tinyTrainer({ memoryBudget: { budgetBytes: 1e6, sample }, logger: { info: () => {}, warn: (m) => warnings.push(m) } });
    const data = blobs(16);
    await t.fit(data, { epochs: 1, batchSize: 4 });
    expect(warnings).to.deep.equal([]);
    await t.fit(data, { epochs: 2, batchSize: 8 });
    expect(warnings.join('\n')).to.match(/measured on batches of 4 samples but fit uses batchSize 8/);
    t.dispose();
    data.dispose();
    tf.dispose([sample.x, sample.y]);
  });

  it('setup surgery can replace the model; later hooks see the new one', async () => {
    const replacement = tinyMlp(9);
    const data = blobs(16);
    const t = tinyTrainer({
      plugins: [plugin('swap', ({ hooks }) => hooks.setup.tap('swap', (ctx) => ctx.replaceModel(replacement)))],
    });
    await t.setup();
    expect(t.model.layersModel).to.equal(replacement);
    expect(Object.keys(t.variables)).to.deep.equal(replacement.trainableWeights.map((w) => (w.read() as tf.Variable).name));
    t.dispose();
    data.dispose();
  });

  it("a model replaced at setup is named by one warning when the model passed in was compiled (a model.fit program's): it stays untrained, trainer.layersModel is the trained one", async () => {
    const mine = tinyMlp(2);
    mine.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy' }); // a ported program keeps its compile for model.evaluate
    const copy = tinyMlp(2); // the same weights: what a rebuilding plugin (OnlineNorm, LoRA) starts from
    const warnings: string[] = [];
    const data = blobs(32);
    const t = tinyTrainer({
      model: mine,
      logger: { info: () => {}, warn: (m) => void warnings.push(m) },
      plugins: [plugin('swap', ({ hooks }) => hooks.setup.tap('swap', (ctx) => ctx.replaceModel(copy)))],
    });
    const untrained = mine.getWeights().map((w) => Array.from(w.dataSync()));
    await t.fit(data, { epochs: 2, batchSize: 8 });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.contain("plugin 'swap' rebuilt the model at setup");
    expect(warnings[0]).to.contain('the model you passed in stays as it was (untrained). Save, predict and evaluate with `trainer.layersModel`');
    expect(mine.getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(untrained);
    expect(t.model.layersModel!.getWeights().map((w) => Array.from(w.dataSync()))).not.to.deep.equal(untrained);
    // trainer.layersModel is that trained copy, typed non-optional (no `!`).
    expect(t.layersModel).to.equal(copy);
    t.dispose();
    const plain: string[] = [];
    const u = tinyTrainer({ model: mine, logger: { info: () => {}, warn: (m) => void plain.push(m) } });
    await u.fit(data, { epochs: 1, batchSize: 8 });
    expect(plain).to.deep.equal([]); // nothing to say when the trainer trains the model it was given
    u.dispose();
    mine.dispose();
    // Not compiled: a program written for tapfit, told at info level (no warning on stderr).
    const written = { infos: [] as string[], warnings: [] as string[] };
    const v = tinyTrainer({
      model: tinyMlp(2),
      logger: { info: (m) => void written.infos.push(m), warn: (m) => void written.warnings.push(m) },
      plugins: [plugin('swap', ({ hooks }) => hooks.setup.tap('swap', (ctx) => ctx.replaceModel(tinyMlp(2))))],
    });
    await v.fit(data, { epochs: 1, batchSize: 8 });
    expect(written.warnings).to.deep.equal([]);
    expect(written.infos.filter((m) => m.includes("plugin 'swap' rebuilt the model at setup"))).to.have.length(1);
    v.dispose();
    data.dispose();
  });

  it('trains a segment model and respects frozen (non-trainable) variables', async () => {
    const w = tf.variable(tf.randomNormal([4, 3], 0, 0.1, 'float32', 3), true, 'seg_w');
    const frozen = tf.variable(tf.ones([3]), false, 'seg_scale');
    const seg: Segment = { name: 'linear', params: [w, frozen], forward: ([x]) => [tf.mul(tf.matMul(x, w), frozen)] };
    const t = new Trainer({ model: segmentModel([seg], { inputShape: [4] }), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.5 }), logger: new SilentLogger() });
    const data = blobs(48);
    const h = await t.fit(data, { epochs: 5, batchSize: 16 });
    expect(h.history.loss[4]).to.be.lessThan(h.history.loss[0]);
    expect(Object.keys(t.variables)).to.deep.equal(['seg_w']);
    expect(Array.from(frozen.dataSync())).to.deep.equal([1, 1, 1]);
    // No tfjs-layers view: trainer.layersModel says what to use instead of returning undefined.
    expect(() => t.layersModel).to.throw(TapfitError, /trainer\.layersModel: this trainer trains a segment model, which has no tfjs-layers view\. Use trainer\.model/);
    t.dispose();
    tf.dispose([w, frozen]);
    data.dispose();
  });

  it('predict() runs in inference mode and leaks nothing', async () => {
    const t = tinyTrainer();
    await t.setup();
    const x = tf.ones([2, 4]);
    const before = tf.memory().numTensors;
    const y = t.predict(x);
    expect(y.shape).to.deep.equal([2, 3]);
    y.dispose();
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
    t.dispose();
  });
});

describe('Trainer.dispose', () => {
  useBackend('cpu');

  it('disposes a model a plugin swapped in at setup, but not the caller model', async () => {
    const mine = tinyMlp(2);
    const replacement = tinyMlp(4);
    const t = tinyTrainer({ model: mine, plugins: [plugin('swap', ({ hooks }) => hooks.setup.tap('swap', (ctx) => ctx.replaceModel(replacement)))] });
    await t.setup();
    const before = tf.memory().numTensors;
    t.dispose();
    expect(before - tf.memory().numTensors).to.equal(replacement.weights.length + 4 /* momentum buffers */);
    expect(() => mine.predict(tf.ones([1, 4]))).not.to.throw();
  });

  it('plugins see the seed', () => {
    let seed = -1;
    tinyTrainer({ seed: 42, plugins: [plugin('s', ({ trainer }) => void (seed = trainer.seed))] });
    expect(seed).to.equal(42);
  });
});

describe('segment weight resolution', () => {
  useBackend('cpu');

  it('a wrapper can substitute an effective weight through ctx.weights, and gradients flow to it', async () => {
    const w = tf.variable(tf.tensor2d([[1, 0], [0, 1]]), false, 'frozen_w');
    const delta = tf.variable(tf.zeros([2, 2]), true, 'delta');
    const base: Segment = { name: 'lin', params: [w], forward: ([x], ctx) => [tf.matMul(x, readParam(ctx, w))] };
    const wrapped: Segment = {
      name: 'lin',
      params: [w, delta],
      forward: (xs, ctx) => base.forward(xs, { ...ctx, weights: (v) => (v === w ? tf.add(w, delta) : readParam(ctx, v)) }),
    };
    const x = tf.tensor2d([[1, 2]]);
    const ctx = { training: true, recomputing: false, step: 0 };
    const { grads } = tf.variableGrads(() => tf.sum(wrapped.forward([x], ctx)[0]) as tf.Scalar, [delta]);
    expect(Array.from(grads.delta.dataSync())).to.deep.equal([1, 1, 2, 2]);
    expect(Array.from(base.forward([x], ctx)[0].dataSync())).to.deep.equal([1, 2]);
    tf.dispose([w, delta, x, grads.delta]);
  });
});

describe('tfjs-layers adapter under recompute', () => {
  useBackend('cpu');

  it('a recomputed BatchNormalization forward leaves its moving statistics as they were', () => {
    const model = tf.sequential({ layers: [tf.layers.batchNormalization({ inputShape: [3], momentum: 0.5 })] });
    const seg = fromLayersModel(model).segments[0];
    const x = tf.tensor2d([[1, 2, 3], [3, 4, 5]]);
    const stats = () => model.layers[0].nonTrainableWeights.map((w) => Array.from(w.read().dataSync()));
    const first = seg.forward([x], { training: true, recomputing: false, step: 0 });
    const afterFirst = stats();
    expect(afterFirst[0]).to.not.deep.equal([0, 0, 0]);
    const again = seg.forward([x], { training: true, recomputing: true, step: 0 });
    expect(stats()).to.deep.equal(afterFirst);
    expect(Array.from(again[0].dataSync())).to.deep.equal(Array.from(first[0].dataSync()));
    tf.dispose([x, ...first, ...again]);
    model.dispose();
  });

  it('isLayersAdapter: true for fromLayersModel segments (wrapped by spreading too), false for hand-written segments with a layers view', () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [3], units: 2 }), tf.layers.dense({ units: 1 })] });
    const adapted = fromLayersModel(model);
    expect(isLayersAdapter(adapted)).to.equal(true);
    expect(isLayersAdapter({ ...adapted, segments: adapted.segments.map((s) => ({ ...s, forward: s.forward })) })).to.equal(true);
    const w = tf.variable(tf.ones([3, 1]));
    const own: Segment = { name: 'own', params: [w], forward: ([x], ctx) => [tf.matMul(x, readParam(ctx, w))] };
    expect(isLayersAdapter(segmentModel([own]))).to.equal(false);
    // A builder's segments with a tfjs-layers view of the same variables (as revBiFPN has) are not an adapter.
    expect(isLayersAdapter({ segments: [own], layersModel: model })).to.equal(false);
    model.dispose();
    w.dispose();
  });

  it('memoryBudget as a trainer option trains with the planned executor; an impossible budget is TAPFIT_E_MEMORY', async () => {
    const data = blobs(32);
    const sample = { x: data.x.slice(0, 8), y: data.y.slice(0, 8) };
    const t = tinyTrainer({ memoryBudget: { budgetBytes: 1e9, sample } });
    const h = await t.fit(data, { epochs: 4, batchSize: 8 });
    expect(h.history.loss[3]).to.be.lessThan(h.history.loss[0]);
    expect(t.describe({ print: false }).memoryPlan!.predictedPeakBytes).to.be.greaterThan(0);
    const tight = tinyTrainer({ memoryBudget: { budgetBytes: 16, sample } });
    let err: unknown;
    await tight.setup().catch((e) => (err = e));
    expect((err as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
    tf.dispose([sample.x, sample.y]);
    data.dispose();
  });
});

describe('data sources', () => {
  useBackend('cpu');

  const elements = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ xs: tf.tensor1d([Math.sin(i), Math.cos(i), (i % 3) - 1, 0.5]), ys: tf.scalar(i % 3, 'int32') }));

  it('trains from a tf.data.Dataset, batching it; shuffling is seeded by (seed, epoch)', async () => {
    const order = async (seed: number, epoch: number) => {
      const src = datasetData(tf.data.array(elements(12)), { size: 12 });
      const it = src.batches({ batchSize: 4, shuffle: true, seed, epoch });
      const seen: number[] = [];
      for (let r = await it.next(); !r.done; r = await it.next()) {
        seen.push(...Array.from(r.value.x.slice([0, 0], [-1, 1]).dataSync()));
        tf.dispose([r.value.x, r.value.y]);
      }
      return seen;
    };
    expect(await order(1, 0)).to.deep.equal(await order(1, 0));
    expect(await order(1, 0)).to.not.deep.equal(await order(1, 1));
    expect((await order(1, 0)).length).to.equal(12);

    const t = tinyTrainer();
    const h = await t.fit(datasetData(tf.data.array(elements(48)), { size: 48 }), { epochs: 3, batchSize: 8 });
    expect(h.epoch).to.have.length(3);
    expect(h.history.loss[2]).to.be.lessThan(h.history.loss[0]);
    expect(t.step).to.equal(18);
    t.dispose();
  });

  it('arrayData takes nested arrays, or flat typed arrays with a sample shape', () => {
    const nested = arrayData({ x: [[1, 2], [3, 4], [5, 6]], y: [0, 1, 0] });
    expect(nested.x.shape).to.deep.equal([3, 2]);
    expect(nested.y.dtype).to.equal('int32');
    const flat = arrayData({ x: new Float32Array(12), y: new Int32Array(3), xShape: [2, 2] });
    expect(flat.x.shape).to.deep.equal([3, 2, 2]);
    expect(() => arrayData({ x: new Float32Array(10), y: new Int32Array(3), xShape: [4] })).to.throw(/10 values, not a multiple of the sample shape \[4\]/);
    expect(() => arrayData({ x: new Float32Array(8), y: new Int32Array(3), xShape: [4] })).to.throw(/x has 2 samples but y has 3/);
    nested.dispose();
    flat.dispose();
    // A flat y of fractions is targets, not class indices to truncate.
    const targets = arrayData({ x: [[1], [2], [3]], y: [0.5, 1.5, 2.25] });
    expect(targets.y.dtype).to.equal('float32');
    expect(Array.from(targets.y.dataSync())).to.deep.equal([0.5, 1.5, 2.25]);
    targets.dispose();
  });

  it('datasetData names a dataset batched for model.fitDataset and elements that are not { xs, ys }, before a shuffle buffer fills: nothing leaks', async () => {
    const t = tinyTrainer();
    await t.setup();
    const xs = Array.from({ length: 24 }, (_, i) => tf.tensor1d([Math.sin(i), Math.cos(i), (i % 3) - 1, 0.5]));
    const ys = Array.from({ length: 24 }, (_, i) => tf.scalar(i % 3, 'int32'));
    const before = tf.memory().numTensors;
    const cases: [tf.data.Dataset<tf.TensorContainer>, RegExp][] = [
      [tf.data.zip({ xs: tf.data.array(xs), ys: tf.data.array(ys) }).batch(8), /a batch of x has shape \[3,8,4\], but the model takes \[batch, 4\]\. The source yields batches of batches: for a dataset batched for model\.fitDataset use datasetData\(ds, \{ batched: true \}\)/],
      [tf.data.zip([tf.data.array(xs), tf.data.array(ys)]), /elements must be \{ xs, ys \}.*got an array of 2\. Map them, e\.g\. ds\.map/],
      [tf.data.zip({ x: tf.data.array(xs), y: tf.data.array(ys) }), /elements must be \{ xs, ys \}.*got \{ x, y \}/],
    ];
    for (const [ds, pattern] of cases) {
      const err = await t.fit(datasetData(ds), { epochs: 1, batchSize: 8 }).then(
        () => expect.fail(`accepted ${pattern}`),
        (e: Error) => e,
      );
      expect(err.message).to.match(pattern);
      expect(tf.memory().numTensors, String(pattern)).to.equal(before);
    }
    expect(t.step).to.equal(0);
    t.dispose();
    tf.dispose([...xs, ...ys]);
  });

  it('host-side batches equal the device gather of the same permutation', () => {
    const data = blobs(20);
    const it = data.batches({ batchSize: 8, shuffle: true, seed: 3, epoch: 2 }) as Iterator<{ x: tf.Tensor; y: tf.Tensor }>;
    const first = it.next().value as { x: tf.Tensor; y: tf.Tensor };
    const idx = tf.tensor1d(permutation(20, 3, 2).slice(0, 8), 'int32');
    const [expectedX, expectedY] = [tf.gather(data.x, idx), tf.gather(data.y, idx)];
    expect(Array.from(first.x.dataSync())).to.deep.equal(Array.from(expectedX.dataSync()));
    expect(Array.from(first.y.dataSync())).to.deep.equal(Array.from(expectedY.dataSync()));
    tf.dispose([first.x, first.y, idx, expectedX, expectedY]);
    data.dispose();
  });
});
