// A plugin's saved tensors keyed by model variable names come back under the resumed
// model's names: tfjs numbers names per process, so a model rebuilt for Trainer.resume in
// the same process has 'hidden/kernel_1' where the saved one had 'hidden/kernel'.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { sgd, SilentLogger, trainableVariables, Trainer, type PluginState, type TapfitPlugin, type TrainerOptions } from '../src';
import { blobs, tinyMlp, tmpDir, useBackend } from './fixtures';

/** Keeps a running sum of each trainable weight, keyed by its variable name (as the plugin guide says checkpoints key tensors). */
function weightSums(): TapfitPlugin & { sums: Record<string, tf.Tensor>; loadedKeys?: string[] } {
  const p: TapfitPlugin & { sums: Record<string, tf.Tensor>; loadedKeys?: string[] } = {
    name: 'weight-sums',
    core: '^0.1.0',
    sums: {},
    apply({ hooks, trainer }) {
      hooks.batchEnd.tap('weight-sums', () => {
        for (const v of trainableVariables(trainer.model)) {
          const old = p.sums[v.name];
          p.sums[v.name] = tf.keep(old ? tf.add(old, v) : tf.clone(v));
          old?.dispose();
        }
      });
    },
    saveState: (): PluginState => ({ tensors: p.sums }),
    loadState(state) {
      p.loadedKeys = Object.keys(state.tensors ?? {});
      tf.dispose(Object.values(p.sums));
      p.sums = { ...(state.tensors as Record<string, tf.Tensor>) };
    },
    dispose: () => tf.dispose(Object.values(p.sums)),
  };
  return p;
}

describe('plugin state keyed by variable names survives a resume in the same process', () => {
  useBackend('cpu');

  it('the keys are renamed to the resumed model\'s variables, which then train on as straight through', async () => {
    const options = (plugin: TapfitPlugin): TrainerOptions => ({ model: tinyMlp(3), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1 }), logger: new SilentLogger(), plugins: [plugin] });
    const data = blobs(32);
    const straightPlugin = weightSums();
    const straight = new Trainer(options(straightPlugin));
    await straight.fit(data, { epochs: 2, batchSize: 8 });
    const expected = Object.values(straightPlugin.sums).map((t) => Array.from(t.dataSync()));

    const dir = tmpDir();
    const first = new Trainer(options(weightSums()));
    await first.fit(data, { epochs: 1, batchSize: 8 });
    await first.save(dir);
    first.dispose();
    const plugin = weightSums();
    const resumed = await Trainer.resume(dir, options(plugin));
    const names = Object.keys(resumed.variables);
    expect(names.some((n) => /_\d+$/.test(n)), `the rebuilt model's names are numbered: ${names}`).to.equal(true);
    expect(plugin.loadedKeys).to.deep.equal(names);
    await resumed.fit(data, { epochs: 2, batchSize: 8 });
    expect(Object.values(plugin.sums).map((t) => Array.from(t.dataSync()))).to.deep.equal(expected);
    [straight, resumed].forEach((t) => t.dispose());
    data.dispose();
  });
});
