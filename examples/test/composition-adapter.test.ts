import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { Trainer } from '@tapfit/core';
import { LoraModel, type lora } from '@tapfit/plugin-lora';
import { replaceBatchNorm } from '@tapfit/plugin-onlinenorm';
import { expect } from 'chai';
import { BATCH, batchNormMlp, composition, type PackageKey } from '../src/composition';
import { tmpDir } from './helpers';

/**
 * An adapter-only save of LoRA, composed with what moves normalisation statistics
 * (BatchNorm's moving statistics; online-norm's OnlineNorm statistics), loads back onto
 * the base the trainer trained and predicts as the trained model, bit for bit.
 */
describe('composition: LoRA adapter files round-trip', function () {
  this.timeout(60_000);
  before(async () => {
    await tf.setBackend('cpu');
  });

  /** Train the composition two epochs, save its adapter, load it onto `rebuild(fresh base)`; the two models' predictions. */
  async function roundTrip(set: PackageKey[], rebuild: (base: tf.LayersModel) => tf.LayersModel): Promise<{ trained: Float32Array; loaded: Float32Array }> {
    const c = composition(set);
    const options = c.options();
    const t = new Trainer(options);
    const data = c.data();
    await t.fit(data, { epochs: 2, batchSize: BATCH });
    const dir = tmpDir('tapfit-composition-adapter-');
    await (t.plugins.find((p) => p.name === 'lora') as ReturnType<typeof lora>).lora.saveAdapter(dir);
    const fresh = batchNormMlp();
    const base = rebuild(fresh);
    const again = await LoraModel.load(base, dir);
    const probe = tf.slice(data.x, 0, 8);
    const want = t.predict(probe);
    const got = again.model.predict(probe) as tf.Tensor;
    const out = { trained: Float32Array.from(want.dataSync()), loaded: Float32Array.from(got.dataSync()) };
    tf.dispose([probe, want, got]);
    again.dispose();
    if (base !== fresh) base.dispose();
    fresh.dispose();
    t.dispose();
    data.dispose();
    (options.model as tf.LayersModel).dispose();
    fs.rmSync(dir, { recursive: true, force: true });
    return out;
  }

  it('LoRA on the BatchNorm MLP: loaded onto a fresh build of the base, the adapter predicts as the trained model (the moving statistics ride along)', async () => {
    const { trained, loaded } = await roundTrip(['lora'], (base) => base);
    expect(Buffer.from(loaded.buffer).equals(Buffer.from(trained.buffer))).to.equal(true);
  });

  it('online-norm + LoRA: loaded onto replaceBatchNorm(fresh base), the adapter predicts as the trained model (OnlineNorm statistics ride along)', async () => {
    const { trained, loaded } = await roundTrip(['online-norm', 'lora'], (base) => replaceBatchNorm(base, { alphaFwd: 0.99, alphaBkw: 0.9 }));
    expect(Buffer.from(loaded.buffer).equals(Buffer.from(trained.buffer))).to.equal(true);
  });
});
