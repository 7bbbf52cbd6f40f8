import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { sgd, Trainer, TapfitError } from '@tapfit/core';
import { blobData, describeConformance, testTrainer, testTrainerOptions, tinyModel } from '@tapfit/core/testing';
import { applyLora, lora, LoraDense } from '../src';
import { useCpu } from './helpers';

const options = { targets: 'hidden', rank: 2, alpha: 4, seed: 7, modulesToSave: 'out' } as const;

describeConformance({
  plugin: () => lora(options),
  twin: () => ({ model: applyLora(tinyModel(), options).model }),
  twinTolerance: 0,
});

describe('lora plugin', () => {
  useCpu();

  it('does the surgery at setup: the adapters are the only trainer variables, they learn, the base stays frozen', async () => {
    const plugin = lora({ targets: 'hidden', rank: 2, seed: 1 });
    const trainer = testTrainer({ model: tinyModel(), plugins: [plugin], optimizer: sgd({ lr: 0.5 }) });
    await trainer.setup();
    expect(trainer.model.layersModel!.layers[0]).to.be.instanceOf(LoraDense);
    expect(Object.keys(trainer.variables).map((n) => n.replace(/_\d+$/, ''))).to.deep.equal(['hidden/lora_A.default', 'hidden/lora_B.default']);
    expect(trainer.describe({ print: false }).trainableParams).to.equal(2 * (4 + 8));
    const layer = plugin.lora!.layers[0];
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

  it('logs its plan at setup only with verbose: true; describe() has it either way', async () => {
    const lines: string[] = [];
    const logger = { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(s) };
    const plans = () => lines.filter((l) => l.startsWith('LoRA plan'));
    const quiet = lora({ targets: 'hidden', rank: 2, seed: 1 });
    const t1 = testTrainer({ plugins: [quiet], logger });
    await t1.setup();
    expect(plans()).to.deep.equal([]);
    expect(quiet.lora!.describe()).to.match(/^LoRA plan \(rank 2\):\nlayer +class[\s\S]*\nhidden +Dense +4x8/);
    const verbose = lora({ targets: 'hidden', rank: 2, seed: 1, verbose: true });
    const t2 = testTrainer({ plugins: [verbose], logger });
    await t2.setup();
    expect(plans()).to.deep.equal([verbose.lora!.describe()]);
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
});
