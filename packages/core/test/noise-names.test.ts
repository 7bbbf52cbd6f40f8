import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { fromLayersModel, noiseKey, noiseSeed, sgd, SilentLogger, Trainer, type SegmentContext, type TapfitPlugin, type TrainerOptions } from '../src';
import { blobs, tmpDir, useBackend } from './fixtures';

/**
 * tfjs names an unnamed layer with a number counted per process ('dropout_Dropout1', then
 * 'dropout_Dropout2' for the next one built), so the same model built twice has other names.
 * A Dropout's masks must not follow that number (core README "Randomness and reproducibility"):
 * oracles are the same model built first, a straight run, and the rule's draws for a named layer.
 */
describe("dropout masks do not depend on tfjs's per-process numbering of unnamed layers", () => {
  useBackend('cpu');

  const ctx: SegmentContext = { training: true, recomputing: false, step: 0, noiseKey: noiseKey(7, 0) };
  /** Each segment's output for ones (the layer's mask times 1 / keep), forward in training. */
  const masks = (model: tf.LayersModel): number[][] =>
    fromLayersModel(model).segments.map((s) =>
      tf.tidy(() => Array.from(s.forward([tf.ones([4, 16])], ctx)[0]!.dataSync())),
    );

  it('the same model built again, after other layers were made, draws the same masks', () => {
    const build = () => tf.sequential({ layers: [tf.layers.dropout({ inputShape: [16], rate: 0.5 })] });
    const first = build();
    for (let i = 0; i < 3; i++) tf.layers.dropout({ rate: 0.5 }); // tfjs counts these too
    const again = build();
    expect(again.layers[0]!.name).to.not.equal(first.layers[0]!.name); // the premise: tfjs renumbered it
    const tensors = tf.memory().numTensors;
    expect(masks(again)).to.deep.equal(masks(first));
    expect(tf.memory().numTensors).to.equal(tensors);
    first.dispose();
    again.dispose();
  });

  it("two unnamed Dropouts of one model (also one inside a nested model) draw different masks; a named one draws its name's masks", () => {
    const named = tf.sequential({
      layers: [
        tf.layers.dropout({ inputShape: [16], rate: 0.5 }),
        tf.layers.dropout({ rate: 0.5, name: 'drop' }),
        tf.layers.dropout({ rate: 0.5 }),
      ],
    });
    const [a, drop, b] = masks(named);
    expect(b).to.not.deep.equal(a);
    // The oracle for a name the user chose: the rule with that name, as before numbering was looked at.
    const byName = tf.tidy(() => Array.from(tf.dropout(tf.ones([4, 16]), 0.5, undefined, noiseSeed(ctx, 'drop', 0)).dataSync()));
    expect(drop).to.deep.equal(byName);
    const inner = tf.sequential({ layers: [tf.layers.dropout({ inputShape: [16], rate: 0.5 })] });
    const nested = tf.sequential({ layers: [inner, tf.layers.dropout({ rate: 0.5 })] });
    const [inside, after] = masks(nested);
    expect(after).to.not.deep.equal(inside);
    named.dispose();
    nested.dispose();
  });

  describe('in a Trainer (every layer unnamed)', () => {
    const mlp = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ units: 16, inputShape: [4], activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
          tf.layers.dropout({ rate: 0.5 }),
          tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
        ],
      });
    const options = (seed: number, extra: Partial<TrainerOptions> = {}): TrainerOptions => ({
      model: mlp(),
      loss: 'softmaxCrossEntropy',
      optimizer: sgd({ lr: 0.1, momentum: 0.9 }),
      logger: new SilentLogger(),
      seed,
      ...extra,
    });
    const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));
    const free = (...ts: Trainer[]) =>
      ts.forEach((t) => {
        t.model.layersModel!.dispose();
        t.dispose();
      });

    it('two trainers with one seed in one process train to bitwise equal weights; another seed to others', async () => {
      const data = blobs(32);
      const runs = [];
      for (const seed of [3, 3, 4]) {
        const t = new Trainer(options(seed));
        await t.fit(data, { epochs: 2, batchSize: 8, shuffle: false }); // unshuffled: the seed reaches only the masks
        runs.push(weights(t));
        free(t);
      }
      expect(runs[1]).to.deep.equal(runs[0]);
      expect(runs[2]).to.not.deep.equal(runs[0]);
      data.dispose();
    });

    it('stop, save and Trainer.resume with the model built again in this process is bitwise equal to training straight through', async () => {
      const stopAt = (stop: () => void): TapfitPlugin => ({ name: 'stop-at', core: '^0.1.0', apply: ({ hooks }) => hooks.batchEnd.tap('stop-at', (i) => void (i.epoch === 1 && i.batch === 1 && stop())) });
      const data = blobs(32);
      const straight = new Trainer(options(5));
      await straight.fit(data, { epochs: 3, batchSize: 8 });
      const holder: { t?: Trainer } = {};
      const interrupted = (holder.t = new Trainer(options(5, { plugins: [stopAt(() => holder.t!.stop())] })));
      await interrupted.fit(data, { epochs: 3, batchSize: 8 });
      const dir = tmpDir();
      await interrupted.save(dir);
      const resumed = await Trainer.resume(dir, options(5, { plugins: [stopAt(() => {})] }));
      expect(resumed.model.layersModel!.layers[1]!.name).to.not.equal(straight.model.layersModel!.layers[1]!.name); // renumbered
      await resumed.fit(data, { epochs: 3, batchSize: 8 });
      expect(resumed.step).to.equal(straight.step);
      expect(weights(resumed)).to.deep.equal(weights(straight));
      free(straight, interrupted, resumed);
      data.dispose();
    });
  });
});
