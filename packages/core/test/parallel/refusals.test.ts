import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as path from 'node:path';
import { dataParallel, segmentModel, sgd, SilentLogger, TapfitError, Tokens, Trainer, trainableVariables, type TapfitPlugin, type TrainerOptions } from '../../src';
import { batchNormModel } from '../../src/testing';
import { rejected, thrown, useBackend } from '../fixtures';
import { batchFor, smallMlp } from './fixtures/models';
import { withKernelPenalty } from './fixtures/penalty-loss';
import { TapfitTestScale } from './fixtures/scale-layer';

const fixture = (name: string) => path.resolve(__dirname, 'fixtures', `${name}.js`);
const options = (overrides: Partial<TrainerOptions> = {}): TrainerOptions => ({
  model: smallMlp(),
  loss: 'softmaxCrossEntropy',
  optimizer: sgd({ lr: 0.1 }),
  logger: new SilentLogger(),
  plugins: [dataParallel()],
  ...overrides,
});
const plugin = (name: string, apply: TapfitPlugin['apply'] = () => {}): TapfitPlugin => ({ name, core: '^0.1.0', apply });

/** The model's weights, read back (to show a refused step applied nothing). */
const weightsOf = (model: tf.LayersModel) => model.weights.map((w) => Array.from(w.read().dataSync()));

/** Runs one step on a fresh batch; returns the error it threw. */
function failedStep(trainer: Trainer, model: tf.LayersModel, step = 0): TapfitError {
  const batch = batchFor(model, 16, 11 + step);
  return thrown(() => trainer.trainStep(batch, { epoch: 0, batch: step, step }).loss.dispose());
}

describe('dataParallel: what it refuses, and failing replicas', () => {
  useBackend('wasm');

  it('options: replicas below 2, a relative setupModule', () => {
    expect(thrown(() => dataParallel({ replicas: 1 })).message).to.match(/dataParallel: option 'replicas' must be an integer from 2 to 16/);
    expect(thrown(() => dataParallel({ setupModule: './setup.js' })).message).to.match(/option 'setupModule' must be an absolute path or a file: URL/);
  });

  it('a model with BatchNormalization: setup refuses, naming the layer, and starts no worker', async () => {
    const model = batchNormModel();
    const trainer = new Trainer(options({ model }));
    const err = await rejected(trainer.setup());
    expect(err.message).to.contain("BatchNormalization 'bn1' normalises by the batch's statistics in training");
    expect(err.message).to.contain('Train this model without dataParallel');
    trainer.dispose();
    model.dispose();
  });

  it('a segment model (hand-written segments): refused, the workers rebuild tfjs-layers models only', async () => {
    const w = tf.variable(tf.ones([6, 3]));
    const model = segmentModel([{ name: 'dense', params: [w], forward: ([x]) => [tf.matMul(x!, w)] }], { inputShape: [6], outputShape: [3] });
    const trainer = new Trainer(options({ model }));
    expect((await rejected(trainer.setup())).message).to.contain('data-parallel: the trainer\'s model is a segment model; each replica worker rebuilds the model from its tfjs-layers JSON');
    trainer.dispose();
    w.dispose();
  });

  it('plugins whose forward the replicas would not run (LoRA, OnlineNorm, revsilo) or that replace the Backprop (pipeline): refused at registration, naming them', () => {
    for (const name of ['lora', 'online-norm', 'revsilo', 'pipeline', 'memory-budget']) {
      const model = smallMlp();
      const err = thrown(() => new Trainer(options({ model, plugins: [dataParallel(), plugin(name)] })));
      expect(err.code, name).to.equal('TAPFIT_E_PLUGIN_CONFLICTS');
      expect(err.message).to.contain(`'${name}'`);
      model.dispose();
    }
  });

  it("any other plugin's forward tap: the step is refused naming the plugin, nothing applied", async () => {
    const model = smallMlp();
    const wrap = plugin('wrapper', ({ hooks }) => hooks.forward.tap('wrapper', (pass) => ({ ...pass, segments: pass.segments.map((s) => ({ ...s, forward: (xs, ctx) => s.forward(xs, ctx) })) })));
    const trainer = new Trainer(options({ model, plugins: [dataParallel(), wrap] }));
    await trainer.setup();
    const before = weightsOf(model);
    const err = failedStep(trainer, model);
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.contain("a forward tap (of plugin 'wrapper') changed the step's forward (wrapped or replaced segments)");
    expect(weightsOf(model)).to.deep.equal(before);
    trainer.dispose();
    model.dispose();
  });

  it('a loss function without a setupModule exporting it: refused at construction (functions cannot cross threads)', () => {
    const model = smallMlp();
    const err = thrown(() => new Trainer(options({ model, loss: (yTrue, yPred) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.cast(yTrue, 'int32'), 3), yPred) })));
    expect(err.message).to.contain("export the function as `loss` from a module given as setupModule");
    model.dispose();
  });

  describe('a plugin that decorates the loss (the workers cannot run the decorated function)', () => {
    const l2Penalty = () => plugin('l2-penalty', ({ services, trainer }) => services.decorate(Tokens.Loss, (loss) => withKernelPenalty(loss, () => trainableVariables(trainer.model))));
    /** Adds epsilon times the mean of -log softmax (still a batch mean): not what setupModule's plain cross-entropy computes. */
    const smoothing = () =>
      plugin('label-smoothing', ({ services }) => services.decorate(Tokens.Loss, (loss) => (yTrue, yPred) => tf.add(loss(yTrue, yPred), tf.mul(0.2, tf.mean(tf.neg(tf.logSoftmax(yPred))))) as tf.Scalar));

    it('without a setupModule loss: refused at setup naming the plugins and the setupModule route, in either plugin order, nothing applied', async () => {
      for (const plugins of [
        [dataParallel(), l2Penalty()],
        [l2Penalty(), dataParallel()],
        [smoothing(), dataParallel(), l2Penalty()],
      ]) {
        const names = plugins.map((p) => p.name).filter((n) => n !== 'data-parallel');
        const model = smallMlp();
        const before = weightsOf(model);
        const trainer = new Trainer(options({ model, plugins }));
        const err = await rejected(trainer.setup());
        // A setup tap's error comes wrapped naming the plugin and hook (core's rule); the refusal is its cause.
        expect((err.cause as TapfitError).code, names.join()).to.equal('TAPFIT_E_PLUGIN_CONFLICTS');
        expect(err.message).to.contain(`plugin${names.length > 1 ? 's' : ''} ${names.map((n) => `'${n}'`).join(', ')} decorated the trainer's loss`);
        expect(err.message).to.contain("Export the decorated loss as `loss` from a module given as dataParallel's setupModule");
        expect(weightsOf(model)).to.deep.equal(before);
        trainer.dispose();
        model.dispose();
      }
    });

    it('with a setupModule that exports no loss: refused at setup naming the plugin', async () => {
      const model = smallMlp();
      const trainer = new Trainer(options({ model, plugins: [dataParallel({ setupModule: fixture('scale-layer') }), l2Penalty()] }));
      const err = await rejected(trainer.setup());
      expect((err.cause as TapfitError).code).to.equal('TAPFIT_E_PLUGIN_CONFLICTS');
      expect(err.message).to.contain("plugin 'l2-penalty' decorated the trainer's loss, a function, which cannot cross threads, and setupModule exports no `loss`");
      trainer.dispose();
      model.dispose();
    });

    it("with a setupModule loss other than the decorated one: the first step is refused naming the plugin, not classWeight, nothing applied", async () => {
      const model = smallMlp();
      const batch = batchFor(model, 32);
      const trainer = new Trainer(options({ model, plugins: [dataParallel({ setupModule: fixture('replica-loss') }), smoothing()] }));
      const before = weightsOf(model);
      const err = await rejected(trainer.fit(batch.x, batch.y, { epochs: 1, batchSize: 16, verbose: 0 }));
      expect(err.code).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.contain("is not the samples-weighted mean of the replicas' losses on their parts");
      expect(err.message).to.contain("plugin 'label-smoothing' decorated the trainer's loss, which the main thread computes, while the replica workers compute setupModule's `loss`");
      expect(err.message).not.to.contain('classWeight');
      expect(weightsOf(model)).to.deep.equal(before);
      trainer.dispose();
      model.dispose();
      tf.dispose(batch);
    });
  });

  it("fit's classWeight (not the batch mean each replica computes): the step is refused, nothing applied", async () => {
    const model = smallMlp();
    const batch = batchFor(model, 32);
    const trainer = new Trainer(options({ model }));
    const before = weightsOf(model);
    const err = await rejected(trainer.fit(batch.x, batch.y, { epochs: 1, batchSize: 16, classWeight: { 0: 1, 1: 5, 2: 1 }, verbose: 0 }));
    expect(err.message).to.contain("is not the samples-weighted mean of the replicas' losses on their parts");
    expect(err.message).to.contain('classWeight');
    expect(weightsOf(model)).to.deep.equal(before);
    trainer.dispose();
    model.dispose();
    tf.dispose(batch);
  });

  it("classWeight in a later fit (the loss is checked again on each fit's first step): refused, nothing applied", async () => {
    const model = smallMlp();
    const batch = batchFor(model, 32);
    const trainer = new Trainer(options({ model }));
    await trainer.fit(batch.x, batch.y, { epochs: 1, batchSize: 16, verbose: 0 });
    const before = weightsOf(model);
    const err = await rejected(trainer.fit(batch.x, batch.y, { epochs: 1, batchSize: 16, classWeight: { 0: 1, 1: 5, 2: 1 }, verbose: 0 }));
    expect(err.message).to.contain("is not the samples-weighted mean of the replicas' losses on their parts");
    expect(weightsOf(model)).to.deep.equal(before);
    trainer.dispose();
    model.dispose();
    tf.dispose(batch);
  });

  it('a custom layer class the workers do not know: refused naming setupModule; registered by a setupModule, it trains', async () => {
    const build = () => tf.sequential({ layers: [tf.layers.dense({ inputShape: [6], units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }), new TapfitTestScale({})] });
    const model = build();
    const refused = new Trainer(options({ model }));
    const err = await rejected(refused.setup());
    expect(err.message).to.contain("cannot rebuild the model's layer class 'TapfitTestScale'");
    expect(err.message).to.contain('Register it in a module passed as setupModule');
    refused.dispose();
    const trainer = new Trainer(options({ model, plugins: [dataParallel({ setupModule: fixture('scale-layer') })] }));
    await trainer.setup();
    const r = trainer.trainStep(batchFor(model, 8), { epoch: 0, batch: 0, step: 0 });
    expect(Number.isFinite(r.loss.dataSync()[0])).to.equal(true);
    r.loss.dispose();
    trainer.dispose();
    model.dispose();
  });

  for (const [failure, expected] of [
    ['exit', 'replica 1 (a worker thread) exited (its thread ended) at step 1'],
    ['throw', 'replica 1 (a worker thread) threw: Error: the replica loss failed on purpose'],
  ] as const) {
    it(`a replica that ${failure === 'exit' ? 'dies' : 'throws'} mid-training: the step fails naming it, nothing applied, later steps refused`, async () => {
      process.env.TAPFIT_TEST_REPLICA_FAILURE = failure;
      const model = smallMlp();
      const trainer = new Trainer(options({ model, plugins: [dataParallel({ setupModule: fixture('replica-loss') })] }));
      try {
        await trainer.setup(); // the worker copies the environment here
      } finally {
        delete process.env.TAPFIT_TEST_REPLICA_FAILURE;
      }
      trainer.trainStep(batchFor(model, 16), { epoch: 0, batch: 0, step: 0 }).loss.dispose();
      const before = weightsOf(model);
      const err = failedStep(trainer, model, 1);
      expect(err.code).to.equal('TAPFIT_E_PLUGIN_FAILED');
      expect(err.message).to.contain(expected);
      expect(err.message).to.contain('No update was applied');
      expect(weightsOf(model)).to.deep.equal(before);
      expect(trainer.step).to.equal(1);
      expect(failedStep(trainer, model, 2).message).to.contain(expected);
      trainer.dispose();
      model.dispose();
    });
  }

  it("the main thread's part failing while a replica fails too: the main thread's error is the one thrown", async () => {
    process.env.TAPFIT_TEST_REPLICA_FAILURE = 'throw';
    const model = smallMlp();
    let calls = 0;
    const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) => {
      if (++calls === 3) throw new Error('the main thread loss failed on purpose'); // step 1's own part (each step calls it twice: the part, then the whole batch)
      return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.cast(yTrue, 'int32'), 3), yPred);
    };
    const trainer = new Trainer(options({ model, loss, plugins: [dataParallel({ setupModule: fixture('replica-loss') })] }));
    try {
      await trainer.setup();
    } finally {
      delete process.env.TAPFIT_TEST_REPLICA_FAILURE;
    }
    trainer.trainStep(batchFor(model, 16), { epoch: 0, batch: 0, step: 0 }).loss.dispose();
    expect(failedStep(trainer, model, 1).message).to.contain('the main thread loss failed on purpose');
    trainer.dispose();
    model.dispose();
  });
});
