import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { Trainer, type TapfitError } from '@tapfit/core';
import { blobData, testTrainer, testTrainerOptions } from '@tapfit/core/testing';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { onlineNorm, onlineNormLayers } from '../src';

/** No layer names: tfjs numbers them per process, so each build has other names. */
const unnamed = () =>
  tf.sequential({
    layers: [
      tf.layers.dense({ units: 8, inputShape: [4], kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.batchNormalization(),
      tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });

describe('onlineNorm plugin: checkpoints', () => {
  let dir = '';
  before(async () => {
    await tf.setBackend('cpu');
  });
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onlinenorm-resume-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('resumes in the same process into the same model built again, whose auto-named layers have other names', async () => {
    const data = blobData(32);
    const model = unnamed();
    const trainer = testTrainer({ model, plugins: [onlineNorm()] });
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    const [saved] = onlineNormLayers(trainer.model.layersModel!);
    const counters = [saved.name, saved.state.trainingCalls, saved.state.backwardCalls] as const;
    await trainer.save(dir);
    trainer.dispose();
    model.dispose();

    const again = unnamed();
    const resumed = await Trainer.resume(dir, testTrainerOptions({ model: again, plugins: [onlineNorm()] }));
    try {
      const [layer] = onlineNormLayers(resumed.model.layersModel!);
      expect(layer.name, 'the rebuilt model must have other layer names for this test').to.not.equal(counters[0]);
      expect([layer.state.trainingCalls, layer.state.backwardCalls]).to.deep.equal([counters[1], counters[2]]);
      await resumed.fit(data, { epochs: 2, batchSize: 8 });
      expect(layer.state.trainingCalls).to.equal(counters[1] + 4);
    } finally {
      resumed.dispose();
      again.dispose();
      data.dispose();
    }
  });

  it('state for another count or width of OnlineNorm layers is refused, listing both and naming the position rule', async () => {
    const plugin = onlineNorm();
    const model = unnamed();
    const trainer = testTrainer({ model, plugins: [plugin] });
    await trainer.setup();
    const [layer] = onlineNormLayers(trainer.model.layersModel!);
    const refused = (calls: unknown): TapfitError | undefined => {
      try {
        plugin.checkState!({ json: { calls } });
      } catch (e) {
        return e as TapfitError;
      }
    };
    const two = refused([
      { name: 'bn_a', channels: 8, training: 4, backward: 4 },
      { name: 'bn_b', channels: 6, training: 4, backward: 4 },
    ]);
    expect(two?.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(two?.message).to.include(`the checkpoint's state is for OnlineNorm layers ["bn_a (8 channels)","bn_b (6 channels)"], but this model has ["${layer.name} (8 channels)"]`);
    expect(two?.message).to.match(/matched by position \(layer names may differ between builds.*resume with the model architecture and 'replace' selector that were saved/);
    expect(refused([{ name: 'bn', channels: 6, training: 4, backward: 4 }])?.message).to.match(/layers \["bn \(6 channels\)"\], but this model has \[".* \(8 channels\)"\]/);
    expect(refused([{ name: 'bn', training: 'x', backward: 4 }])?.message).to.match(/not a list of OnlineNorm call counters/);
    // Another name at the same position, with or without channels (an older checkpoint), is the same layer.
    expect(refused([{ name: 'other', channels: 8, training: 4, backward: 4 }])).to.equal(undefined);
    expect(refused([{ name: 'other', training: 4, backward: 4 }])).to.equal(undefined);
    trainer.dispose();
    model.dispose();
  });
});
