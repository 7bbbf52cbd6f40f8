import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, sgd, Trainer, TapfitError } from '@tapfit/core';
import { blobData, describeConformance, testTrainer, testTrainerOptions, tinyModel } from '@tapfit/core/testing';
import { applyLora, lora, LoraDense } from '../src';
import { maxAbsDiff, rejected, sameValues, useCpu } from './helpers';

const options = { targets: 'hidden', rank: 2, alpha: 4, seed: 7, modulesToSave: 'out' } as const;

describeConformance({
  plugin: () => lora(options),
  twin: () => ({ model: applyLora(tinyModel(), options).model }),
  twinTolerance: 0,
});

describe('lora plugin', () => {
  useCpu();

  it('its handles: before setup each throws a STATE error naming setup; after, plugin.lora and plugin.handle are the LoRA model, plugin.segmentLora names plugin.lora', async () => {
    const plugin = lora({ targets: 'hidden', rank: 2, seed: 1 });
    for (const name of ['lora', 'segmentLora', 'handle'] as const) {
      const err = (() => {
        try {
          void plugin[name];
        } catch (e) {
          return e as TapfitError;
        }
        return undefined;
      })();
      expect(err?.code, name).to.equal(ErrorCodes.STATE);
      expect(err?.message, name).to.equal(`lora: plugin.${name} is built when the trainer sets up: await trainer.setup() (or a first fit) before reading it.`);
    }
    const trainer = testTrainer({ model: tinyModel(), plugins: [plugin] });
    await trainer.setup();
    expect(plugin.lora.model).to.equal(trainer.model.layersModel);
    expect(plugin.handle).to.equal(plugin.lora);
    expect(() => plugin.segmentLora).to.throw(/^lora: plugin\.segmentLora is the handle of a segment model, and this trainer's model is a tfjs-layers model: use plugin\.lora \(or plugin\.handle, either kind\)\.$/);
    trainer.dispose();
  });

  it('does the surgery at setup: the adapters are the only trainer variables, they learn, the base stays frozen', async () => {
    const plugin = lora({ targets: 'hidden', rank: 2, seed: 1 });
    const trainer = testTrainer({ model: tinyModel(), plugins: [plugin], optimizer: sgd({ lr: 0.5 }) });
    await trainer.setup();
    expect(trainer.model.layersModel!.layers[0]).to.be.instanceOf(LoraDense);
    expect(Object.keys(trainer.variables).map((n) => n.replace(/_\d+$/, ''))).to.deep.equal(['hidden/lora_A.default', 'hidden/lora_B.default']);
    expect(trainer.describe({ print: false }).trainableParams).to.equal(2 * (4 + 8));
    const layer = plugin.lora.layers[0];
    const kernel0 = tf.clone(layer.kernel.read());
    const data = blobData(48);
    const before = await trainer.evaluate(data);
    await trainer.fit(data, { epochs: 3, batchSize: 8 });
    const after = await trainer.evaluate(data);
    expect(after.loss).to.be.below(before.loss);
    expect(tf.tidy(() => tf.max(tf.abs(tf.sub(layer.kernel.read(), kernel0))).dataSync()[0])).to.equal(0); // base frozen
    expect(tf.tidy(() => tf.max(tf.abs(layer.adapterWeights('default').B.read())).dataSync()[0])).to.be.above(0);
    tf.dispose(kernel0);
    data.dispose();
    trainer.dispose();
  });

  it('warns once at setup, for a compiled model (a ported model.fit program), that the model passed in stays untrained, naming trainer.layersModel (the trained one)', async () => {
    const warnings: string[] = [];
    const base = tinyModel();
    base.compile({ optimizer: 'sgd', loss: 'meanSquaredError' }); // a model.fit program's model, compiled for model.evaluate
    const untrained = base.getWeights().map((w) => Array.from(w.dataSync()));
    const plugin = lora(options);
    const trainer = testTrainer({ model: base, plugins: [plugin], optimizer: sgd({ lr: 0.5 }), logger: { info: () => {}, warn: (s: string) => void warnings.push(s) } });
    const data = blobData(32);
    await trainer.fit(data, { epochs: 2, batchSize: 8 });
    expect(warnings).to.have.length(1);
    expect(warnings[0]).to.match(/^plugin 'lora' rebuilt the model at setup: .*the model you passed in stays as it was \(untrained\)\. Save, predict and evaluate with `trainer\.layersModel`/);
    expect(base.getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(untrained);
    const x = tf.ones([2, 4]);
    const [trained, passed, viaTrainer] = [trainer.layersModel.predict(x) as tf.Tensor, base.predict(x) as tf.Tensor, trainer.predict(x)];
    expect(maxAbsDiff(trained, viaTrainer)).to.equal(0);
    expect(maxAbsDiff(trained, passed)).to.be.above(0);
    tf.dispose([x, trained, passed, viaTrainer]);
    trainer.dispose();
    data.dispose();
    base.dispose();
  });

  it('on a text model whose adapted Embedding masks the padding (maskZero), it trains as model.fit trains the applyLora model: the mask reaches the LSTM', async () => {
    const [T, V, N] = [6, 10, 16];
    const rows = Array.from({ length: N }, (_, i) => Array.from({ length: T }, (_, t) => (t < 2 + (i % 4) ? 1 + ((i * 3 + t * 5) % (V - 1)) : 0)));
    const [x, y] = [tf.tensor2d(rows), tf.tensor2d(rows.map((_, i) => [i % 2]))];
    const base = () =>
      tf.sequential({
        layers: [
          tf.layers.embedding({ name: 'emb', inputDim: V, outputDim: 4, inputLength: T, maskZero: true, embeddingsInitializer: tf.initializers.randomUniform({ minval: -0.5, maxval: 0.5, seed: 2 }) }),
          tf.layers.lstm({ name: 'rnn', units: 4, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), recurrentInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
          tf.layers.dense({ name: 'head', units: 1, activation: 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) }),
        ],
      });
    const adapt = { targets: 'emb', rank: 2, seed: 1, modulesToSave: 'head' };
    const fitOptions = { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 as const };
    const reference = applyLora(base(), adapt).model;
    reference.compile({ loss: 'binaryCrossentropy', optimizer: tf.train.sgd(0.5) });
    const expected = await reference.fit(x, y, fitOptions);
    const trainer = new Trainer({ model: base(), loss: 'binaryCrossentropy', optimizer: sgd({ lr: 0.5 }), plugins: [lora(adapt)], logger: { info: () => {}, warn: () => {} } });
    const h = await trainer.fit(x, y, fitOptions);
    h.history.loss.forEach((l, i) => expect(l).to.be.closeTo(expected.history.loss[i] as number, 1e-6));
    reference.getWeights().forEach((w, i) => expect(maxAbsDiff(trainer.model.layersModel!.getWeights()[i], w), `weight ${i}`).to.be.below(1e-6));
    expect(trainer.model.unsplitReason).to.match(/LoraEmbedding 'emb' makes a mask/);
    trainer.dispose();
    reference.dispose();
    tf.dispose([x, y]);
  });

  it("without a seed of its own, the random factor follows the trainer's seed (a seeded run is reproducible as a whole)", async () => {
    const factorA = async (trainerSeed: number, loraSeed?: number) => {
      const plugin = lora({ targets: 'hidden', rank: 2, ...(loraSeed === undefined ? {} : { seed: loraSeed }) });
      const trainer = testTrainer({ model: tinyModel(), plugins: [plugin], seed: trainerSeed });
      await trainer.setup();
      const a = Array.from(plugin.lora.layers[0].adapterWeights('default').A.read().dataSync());
      trainer.dispose();
      return a;
    };
    expect(await factorA(7)).to.deep.equal(await factorA(7));
    expect(await factorA(7)).to.not.deep.equal(await factorA(8));
    // Its own seed wins: the trainer's seed + 1 is what it derives.
    expect(await factorA(7, 3)).to.deep.equal(await factorA(0, 3));
    expect(await factorA(7)).to.deep.equal(await factorA(0, 8));
    // The trainer's default seed 0 is a seed too: a run without any seed is reproducible.
    expect(await factorA(0)).to.deep.equal(await factorA(0));
    expect(await factorA(0)).to.deep.equal(await factorA(5, 1));
  });

  it('logs its plan at setup only with verbose: true; describe() has it either way', async () => {
    const lines: string[] = [];
    const logger = { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(s) };
    const plans = () => lines.filter((l) => l.startsWith('LoRA plan'));
    const quiet = lora({ targets: 'hidden', rank: 2, seed: 1 });
    const t1 = testTrainer({ plugins: [quiet], logger });
    await t1.setup();
    expect(plans()).to.deep.equal([]);
    expect(quiet.lora.describe()).to.match(/^LoRA plan \(rank 2\):\nlayer +class[\s\S]*\nhidden +Dense +4x8/);
    const verbose = lora({ targets: 'hidden', rank: 2, seed: 1, verbose: true });
    const t2 = testTrainer({ plugins: [verbose], logger });
    await t2.setup();
    expect(plans()).to.deep.equal([verbose.lora.describe()]);
    t1.dispose();
    t2.dispose();
  });

  it('validates options when the plugin is created', () => {
    expect(() => lora({ targets: 'hidden', rank: 0 })).to.throw(TapfitError, /option 'rank'/);
  });

  it('reports unmatched targets at setup, naming the layers', async () => {
    const trainer = testTrainer({ plugins: [lora({ targets: 'q_proj', rank: 2 })] });
    try {
      await trainer.setup();
      expect.fail('setup should fail');
    } catch (err) {
      expect((err as Error).message).to.match(/targets selector 'q_proj' matches no layer[\s\S]*hidden \(Dense 4x8\)/);
    }
  });

  it('refuses to resume a checkpoint made with another LoRA configuration', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-ckpt-'));
    const t = testTrainer({ plugins: [lora({ targets: 'hidden', rank: 2, seed: 1 })] });
    const data = blobData(16);
    await t.fit(data, { epochs: 1, batchSize: 8 });
    await t.save(dir);
    try {
      const model = tinyModel();
      const weights = model.getWeights().map((w) => Array.from(w.dataSync()));
      const before = tf.memory().numTensors;
      for (let attempt = 0; attempt < 2; attempt++) {
        const err = await Trainer.resume(dir, testTrainerOptions({ model, plugins: [lora({ targets: 'hidden', rank: 2, alpha: 8, seed: 1 })] })).then(
          () => expect.fail('resume should fail'),
          (e: Error) => e,
        );
        expect(err.message).to.match(/lora: the checkpoint was trained with LoRA .*"alpha":4.* but this trainer applies .*"alpha":8/);
        // The adapted copy setup built (its adapter weights) is freed; the caller's model is left as it was.
        expect(tf.memory().numTensors, `tensors left after failed resume ${attempt + 1}`).to.equal(before);
        expect(model.getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(weights);
      }
      model.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      data.dispose();
      t.dispose();
    }
  });

  it('refuses, in checkState before anything is written, a resume with other modulesToSave, naming both', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-ckpt-'));
    const data = blobData(16);
    const t = testTrainer({ plugins: [lora({ targets: 'hidden', rank: 2, seed: 1, modulesToSave: 'out' })], optimizer: sgd({ lr: 0.1 }) });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    await t.save(dir);
    try {
      const model = tinyModel();
      const weights = model.getWeights().map((w) => Array.from(w.dataSync()));
      const plugin = lora({ targets: 'hidden', rank: 2, seed: 1 });
      const refusedBy: string[] = [];
      for (const method of ['checkState', 'loadState'] as const) {
        const original = plugin[method]!;
        plugin[method] = (state) => {
          try {
            original(state);
          } catch (e) {
            refusedBy.push(method);
            throw e;
          }
        };
      }
      const err = await rejected(Trainer.resume(dir, testTrainerOptions({ model, plugins: [plugin], optimizer: sgd({ lr: 0.1 }) })));
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal(ErrorCodes.CHECKPOINT);
      expect(err.message).to.match(/lora: the checkpoint was trained with LoRA .*"modulesToSave":\["out"\].* but this trainer applies .*"modulesToSave":\[\].*\(modulesToSave differ\); resume with the same targets, modulesToSave/);
      expect(refusedBy).to.deep.equal(['checkState']);
      expect(model.getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(weights);
      model.dispose();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      data.dispose();
      t.dispose();
    }
  });

  it("resumes a model of unnamed layers built again in this process (tfjs's made-up layer names differ), as core's name check does; a target the user named otherwise is still refused", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-ckpt-'));
    const data = blobData(16);
    const options = { targets: 'all-linear', rank: 2, seed: 1, modulesToSave: 'output' } as const;
    const dense = (units: number, seed: number, name?: string, inputShape?: number[]) =>
      tf.layers.dense({ units, kernelInitializer: tf.initializers.glorotUniform({ seed }), ...(name ? { name } : {}), ...(inputShape ? { inputShape } : {}) });
    const build = (names: (string | undefined)[] = []) => tf.sequential({ layers: [dense(8, 1, names[0], [4]), dense(8, 2, names[1]), dense(3, 3, names[2])] });
    const x = tf.randomNormal([4, 4], 0, 1, 'float32', 9);
    const first = build();
    const plugin = lora(options);
    const t = testTrainer({ model: first, plugins: [plugin], optimizer: sgd({ lr: 0.5 }) });
    await t.fit(data, { epochs: 2, batchSize: 8 });
    await t.save(dir);
    const trained = plugin.lora.model.predict(x) as tf.Tensor;
    const again = lora(options);
    const second = build();
    // The precondition: tfjs numbered the second build's layers on ('dense_Dense4', not 'dense_Dense1').
    expect(second.layers.map((l) => l.name)).not.to.include.members(first.layers.map((l) => l.name));
    const r = await Trainer.resume(dir, testTrainerOptions({ model: second, plugins: [again], optimizer: sgd({ lr: 0.5 }) }));
    expect(again.lora.plan!.adapted.map((l) => l.path)).to.deep.equal(second.layers.slice(0, 2).map((l) => l.name));
    const resumed = again.lora.model.predict(x) as tf.Tensor;
    expect(sameValues(resumed, trained)).to.equal(true);

    // Layers the user named: a saved target named otherwise is refused by the plugin's own check.
    const setUp = async (names: string[]) => {
      const model = build(names);
      const p = lora(options);
      const trainer = testTrainer({ model, plugins: [p] });
      await trainer.setup();
      return { p, done: () => (trainer.dispose(), model.dispose()) };
    };
    const saved = await setUp(['fc1', 'fc2', 'head']);
    const state = saved.p.saveState!();
    const same = await setUp(['fc1', 'fc2', 'head']);
    expect(() => same.p.checkState!(state)).not.to.throw();
    const renamed = await setUp(['fc1', 'enc2', 'head']);
    expect(() => renamed.p.checkState!(state)).to.throw(TapfitError, /"targets":\["fc1","fc2"\].* but this trainer applies .*"targets":\["fc1","enc2"\].*\(targets differ\)/);
    const otherHead = await setUp(['fc1', 'fc2', 'logits']);
    expect(() => otherHead.p.checkState!(state)).to.throw(TapfitError, /\(modulesToSave differ\)/);
    [saved, same, renamed, otherHead].forEach((s) => s.done());
    tf.dispose([x, trained, resumed]);
    fs.rmSync(dir, { recursive: true, force: true });
    data.dispose();
    r.dispose();
    t.dispose();
    first.dispose();
    second.dispose();
  });

  it('refuses to checkpoint while merged (the update would apply twice on resume); unmerged, a resume reproduces the trained outputs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-ckpt-'));
    const data = blobData(16);
    const plugin = lora({ targets: 'hidden', rank: 2, seed: 1 });
    const t = testTrainer({ plugins: [plugin], optimizer: sgd({ lr: 0.5 }) });
    await t.fit(data, { epochs: 3, batchSize: 8 });
    const x = tf.randomNormal([4, 4], 0, 1, 'float32', 9);
    const trained = plugin.lora.model.predict(x) as tf.Tensor;
    plugin.lora.merge();
    const err = await rejected(t.save(dir));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal(ErrorCodes.STATE);
    expect(err.message).to.match(/^lora: cannot save a checkpoint while adapter 'default' is merged into the base weights .*apply the update twice on resume\); call plugin\.lora\.unmerge\(\) first/);
    plugin.lora.unmerge();
    const unmerged = plugin.lora.model.predict(x) as tf.Tensor;
    expect(maxAbsDiff(unmerged, trained)).to.be.below(1e-5);
    await t.save(dir);
    const again = lora({ targets: 'hidden', rank: 2, seed: 1 });
    const r = await Trainer.resume(dir, testTrainerOptions({ model: tinyModel(), plugins: [again], optimizer: sgd({ lr: 0.5 }) }));
    const resumed = again.lora.model.predict(x) as tf.Tensor;
    expect(sameValues(resumed, unmerged)).to.equal(true);
    tf.dispose([x, trained, unmerged, resumed]);
    fs.rmSync(dir, { recursive: true, force: true });
    data.dispose();
    r.dispose();
    t.dispose();
  });
});
