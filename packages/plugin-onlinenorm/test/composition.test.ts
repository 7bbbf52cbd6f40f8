import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { Stage, type TapfitPlugin } from '@tapfit/core';
import { blobData, testTrainer } from '@tapfit/core/testing';
import { OnlineNorm, onlineNorm, onlineNormLayers } from '../src';

// online-norm next to plugins that rebuild the model after it (LoRA rebuilds a layers model
// around its adapters) or recompute segments: the statistics it reports and replays are
// those of the OnlineNorm layers that train. The composition matrix in examples/test runs
// it with LoRA and the pipeline themselves.

/** dense - [BN - tanh] (nested) - dense: the nested model gets `training` from tfjs, not `recomputing`. */
function nestedBnModel(): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const inner = tf.sequential({ name: 'inner', layers: [tf.layers.batchNormalization({ inputShape: [8], name: 'bn1' }), tf.layers.activation({ activation: 'tanh', name: 'act' })] });
  return tf.sequential({
    layers: [tf.layers.dense({ units: 8, inputShape: [4], kernelInitializer: init(1), name: 'd1' }), inner, tf.layers.dense({ units: 3, kernelInitializer: init(2), name: 'out' })],
  });
}

/** Rebuilds the trainer's layers model from its config with the same weights at setup, as LoRA's surgery does. */
const rebuilder: TapfitPlugin = {
  name: 'rebuild',
  core: '*',
  apply({ hooks }) {
    hooks.setup.tap('rebuild', (ctx) => {
      const source = ctx.model.layersModel!;
      const fresh = tf.Sequential.fromConfig(tf.Sequential, source.getConfig()) as tf.Sequential;
      fresh.setWeights(source.getWeights());
      ctx.replaceModel(fresh);
    });
  },
};

/** Plans the nested segment 'recompute', so the executor re-runs its forward for the backward. */
const recomputeInner: TapfitPlugin = {
  name: 'recompute-inner',
  core: '*',
  apply({ hooks }) {
    hooks.planMemory.tap({ stage: Stage.LAST }, (plan) => ({ ...plan, segments: plan.segments.map((s) => (s.name === 'inner' ? { ...s, policy: 'recompute' } : s)) }));
  },
};

describe('onlineNorm plugin in compositions', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const order of ['online-norm first', 'rebuild first'] as const) {
    it(`a later rebuild of the model (${order} in the list): its state follows the layers that train, which count one training call per step (a recomputed forward replays)`, async () => {
      const plugin = onlineNorm({ alphaFwd: 0.99, alphaBkw: 0.9 });
      const plugins = order === 'online-norm first' ? [plugin, rebuilder, recomputeInner] : [rebuilder, plugin, recomputeInner];
      const model = nestedBnModel();
      const trainer = testTrainer({ model, plugins });
      const data = blobData(32);
      await trainer.fit(data, { epochs: 1, batchSize: 8 });
      const layers = onlineNormLayers(trainer.model.layersModel!);
      expect(layers.map((l) => l.name)).to.deep.equal(['bn1']);
      expect(layers[0]).to.be.instanceOf(OnlineNorm);
      // 4 steps: one training forward each; the recomputed forward replays and does not count.
      expect(layers[0].state.trainingCalls).to.equal(4);
      expect(plugin.saveState!().json).to.deep.equal({ calls: [{ name: 'bn1', channels: 8, training: 4, backward: 4 }] });
      trainer.dispose();
      data.dispose();
      model.dispose();
    });
  }

  it('declares its conflict with revsilo, with the reason', () => {
    const conflict = onlineNorm().conflicts!.find((c) => typeof c !== 'string' && c.plugin === 'revsilo');
    expect(conflict).to.have.property('reason').that.matches(/BatchNormalization layers.*reversible segments/);
    const revsilo: TapfitPlugin = { name: 'revsilo', core: '*', apply() {} };
    expect(() => testTrainer({ model: nestedBnModel(), plugins: [revsilo, onlineNorm()] })).to.throw(/plugins 'online-norm' and 'revsilo' cannot be used together: online-norm swaps/);
  });
});
