// A backward tap may return a subset of the gradients (a "freeze the biases for a step"
// plugin; checkGradients allows it). The withheld variables are skipped that step and keep
// their optimizer state, so training goes on and a checkpoint saved meanwhile resumes.

import { expect } from 'chai';
import { adam, rmsprop, sgd, SilentLogger, Stage, Trainer, type TapfitPlugin, type TrainerOptions } from '../src';
import type { Chain } from '../src/transforms';
import { blobs, tinyMlp, tmpDir, useBackend } from './fixtures';

/** The step (0 first) on which the biases get no gradient. */
const WITHHELD_AT = 1;

/** Drops every bias gradient on step WITHHELD_AT. */
const freezeBiasesOnce = (): TapfitPlugin => ({
  name: 'freeze-biases-once',
  core: '^0.1.0',
  apply: ({ hooks }) =>
    hooks.backward.tap({ stage: Stage.TRANSFORM }, (g, info) =>
      g === null || info.step !== WITHHELD_AT ? g : Object.fromEntries(Object.entries(g).filter(([name]) => !/bias/.test(name))),
    ),
});

/** Records every variable's values after each step, by step count (the view has no variables, so the trainer comes by `holder`). */
function recorder(seen: Map<number, Record<string, number[]>>, holder: { t?: Trainer }): TapfitPlugin {
  return {
    name: 'recorder',
    core: '^0.1.0',
    apply: ({ hooks, trainer }) =>
      hooks.batchEnd.tap('recorder', () => {
        seen.set(trainer.step, Object.fromEntries(Object.entries(holder.t!.variables).map(([k, v]) => [k, Array.from(v.dataSync())])));
      }),
  };
}

const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));

describe('a backward tap that withholds some gradients for a step', () => {
  useBackend('cpu');

  for (const [label, optimizer] of [
    ['adam', () => adam({ lr: 0.01 })],
    ['sgd with momentum', () => sgd({ lr: 0.05, momentum: 0.9 })],
    ['rmsprop with momentum', () => rmsprop({ lr: 0.01, momentum: 0.5 })],
  ] as Array<[string, () => Chain]>) {
    it(`fit goes on, the withheld variables stay put that step, and a checkpoint saved after it resumes bitwise (${label})`, async () => {
      const options = (plugins: TapfitPlugin[]): TrainerOptions => ({
        model: tinyMlp(5),
        loss: 'softmaxCrossEntropy',
        optimizer: optimizer(),
        logger: new SilentLogger(),
        seed: 11,
        plugins: [freezeBiasesOnce(), ...plugins],
      });
      const data = blobs(32);
      const seen = new Map<number, Record<string, number[]>>();
      const straightRef: { t?: Trainer } = {};
      const straight = (straightRef.t = new Trainer(options([recorder(seen, straightRef)])));
      await straight.fit(data, { epochs: 3, batchSize: 8 });
      expect(straight.step).to.equal(12);
      const biases = Object.keys(straight.variables).filter((name) => /bias/.test(name));
      expect(biases.length).to.be.greaterThan(0);
      for (const name of Object.keys(straight.variables)) {
        const before = seen.get(WITHHELD_AT)![name];
        const after = seen.get(WITHHELD_AT + 1)![name];
        if (biases.includes(name)) expect(after, `${name} on the withheld step`).to.deep.equal(before);
        else expect(after, `${name} on the withheld step`).not.to.deep.equal(before);
      }
      // ...and the biases train again afterwards.
      for (const name of biases) expect(seen.get(WITHHELD_AT + 2)![name]).not.to.deep.equal(seen.get(WITHHELD_AT + 1)![name]);

      // Stop right after the withheld step, save, resume in a fresh trainer.
      const dir = tmpDir();
      const holder: { t?: Trainer } = {};
      const stopAfterWithheld: TapfitPlugin = {
        name: 'stop-after-withheld',
        core: '^0.1.0',
        apply: ({ hooks, trainer }) => hooks.batchEnd.tap('stop-after-withheld', () => void (trainer.step === WITHHELD_AT + 1 && holder.t!.stop())),
      };
      const interrupted = (holder.t = new Trainer(options([stopAfterWithheld])));
      await interrupted.fit(data, { epochs: 3, batchSize: 8 });
      expect(interrupted.step).to.equal(WITHHELD_AT + 1);
      await interrupted.save(dir);
      const resumed = await Trainer.resume(dir, options([]));
      await resumed.fit(data, { epochs: 3, batchSize: 8 });
      expect(resumed.step).to.equal(12);
      expect(weights(resumed)).to.deep.equal(weights(straight));

      for (const t of [straight, interrupted, resumed]) t.dispose();
      data.dispose();
    });
  }
});

describe('freezing layers from a plugin: drop their gradients in a backward tap (layer.trainable is refused while plugins are registered)', () => {
  useBackend('cpu');

  it("a plugin that freezes layer 'hidden' from epoch 1 on trains bitwise as the no-plugin recipe, trainable = false between fits", async () => {
    const data = blobs(32);
    const options = (plugins: TapfitPlugin[]): TrainerOptions => ({ model: tinyMlp(5), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05, momentum: 0.9 }), logger: new SilentLogger(), plugins });
    // The oracle: model.fit's fine-tuning recipe, which the trainer follows without plugins.
    const recipe = new Trainer(options([]));
    await recipe.fit(data, { epochs: 1, batchSize: 8 });
    recipe.model.layersModel!.getLayer('hidden').trainable = false;
    await recipe.fit(data, { epochs: 1, batchSize: 8 });
    // Composer's LayerFreezing as a plugin: the layer's variables get no gradient from epoch 1 on.
    const layerFreezing: TapfitPlugin = {
      name: 'layer-freezing',
      core: '^0.1.0',
      apply: ({ hooks, trainer }) =>
        hooks.backward.tap({ stage: Stage.TRANSFORM }, (g, info) => {
          if (g === null || info.epoch < 1) return g;
          const frozen = new Set(trainer.model.layersModel!.getLayer('hidden').weights.map((w) => w.name)); // tfjs may number the layer: 'hidden_1'
          return Object.fromEntries(Object.entries(g).filter(([name]) => !frozen.has(name)));
        }),
    };
    const plugin = new Trainer(options([layerFreezing]));
    await plugin.fit(data, { epochs: 2, batchSize: 8 });
    // By layer (model.getWeights() lists trainable weights first, so a frozen layer moves to the end).
    const all = (t: Trainer) => t.model.layersModel!.layers.flatMap((l) => l.getWeights().map((w) => Array.from(w.dataSync())));
    expect(all(plugin)).to.deep.equal(all(recipe));
    recipe.dispose();
    plugin.dispose();
    data.dispose();
  });
});
