import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, selectBackend, type TapfitError } from '@tapfit/core';
import { batchNormModel, testTrainer } from '@tapfit/core/testing';
import { onlineNorm, onlineNormLayer, onlineNormLayers } from '../src';

/** Dense - OnlineNorm ('device' recurrences, NaN check every call) - dense, seeded, its layers named after `name`. */
function onlineNormModel(name: string): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  const model = tf.sequential({
    name,
    layers: [
      tf.layers.dense({ inputShape: [4], units: 8, kernelInitializer: init(1), name: `${name}_d1` }),
      onlineNormLayer({ name: `${name}_on`, recurrences: 'device' }),
      tf.layers.dense({ units: 1, kernelInitializer: init(2), name: `${name}_d2` }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
  return model;
}

const values = (model: tf.LayersModel) => model.getWeights().map((w) => Array.from(w.dataSync()));

/** 32 samples of 4 features, NaN in sample `nanAt` (if given), labels i % 3. */
function blobs(nanAt?: number) {
  const x = new Float32Array(32 * 4).map((_, i) => ((i * 7) % 11) / 11);
  if (nanAt !== undefined) x.fill(NaN, 4 * nanAt, 4 * (nanAt + 1));
  return arrayData({ x, y: Int32Array.from({ length: 32 }, (_, i) => i % 3), xShape: [4] });
}

describe("OnlineNorm 'device' NaN checks of two models in one process", () => {
  before(async () => {
    await selectBackend('cpu', { log: false });
  });

  it("model.fit: a model's unread failed check neither stops another model's fit nor is lost; its own next call reports it", async () => {
    const xs = tf.randomNormal([8, 4], 0, 1, 'float32', 3);
    const ys = tf.randomNormal([8, 1], 0, 1, 'float32', 4);
    const bad = tf.fill([8, 4], NaN);
    const fit = (model: tf.LayersModel, x: tf.Tensor) => model.fit(x, ys, { epochs: 1, batchSize: 4, shuffle: false, verbose: 0 });
    // The oracle: model B trained with nothing else in the process.
    const alone = onlineNormModel('alone');
    await fit(alone, xs);
    const a = onlineNormModel('modelA');
    const b = onlineNormModel('modelB');
    const aStatistics = () => onlineNormLayers(a).flatMap((l) => [l.state.mean, l.state.variance].map((t) => Array.from(t.dataSync())));
    const before = aStatistics();
    // A's NaN batch: its statistics are checked on the device, and the check is left unread.
    await a.fit(bad, ys, { epochs: 1, batchSize: 8, verbose: 0 });
    // B's second step reads B's checks: A's failure is none of B's business.
    await fit(b, xs);
    expect(values(b), "B's weights").to.deep.equal(values(alone));
    // A is told at its own next call, and its statistics are put back.
    const err = (await fit(a, xs).then(
      () => undefined,
      (e: TapfitError) => e,
    )) as TapfitError | undefined;
    expect(err?.code).to.equal('TAPFIT_E_NON_FINITE');
    expect(err?.message).to.match(/OnlineNorm 'modelA_on': non-finite running mean\/variance \(forward\) at training call 1\b/);
    expect(aStatistics()).to.deep.equal(before);
    tf.dispose([xs, ys, bad]);
    for (const m of [alone, a, b]) m.dispose();
  });

  it('the plugin: two trainers stopped by NaN losses each get their own OnlineNorm error at their next call, in whatever order they call', async () => {
    // ecm 'none': the clamp would turn NaN into a bound, and the loss would stay finite.
    const trainerA = testTrainer({ model: batchNormModel(), plugins: [onlineNorm({ recurrences: 'device', ecm: 'none' })] });
    const trainerB = testTrainer({ model: batchNormModel(), plugins: [onlineNorm({ recurrences: 'device', ecm: 'none' })] });
    const dataA = blobs(20); // batch 3: stopped at trainer step 2
    const dataB = blobs(12); // batch 2: stopped at trainer step 1
    for (const [trainer, data, step] of [
      [trainerA, dataA, 2],
      [trainerB, dataB, 1],
    ] as const) {
      const err = await trainer.fit(data, { epochs: 1, batchSize: 8, shuffle: false }).then(
        () => undefined,
        (e: Error) => e,
      );
      expect(err?.message).to.match(new RegExp(`non-finite loss \\(NaN\\) at step ${step}\\b`));
    }
    const input = tf.ones([2, 4]);
    // B calls first: B's error (its step 1), not A's (the earlier failure in the process).
    expect(() => trainerB.predict(input)).to.throw(/OnlineNorm 'bn1'.*running mean\/variance \(forward\) at training call 2 \(trainer step 1\)/);
    expect(() => trainerA.predict(input)).to.throw(/OnlineNorm 'bn1'.*running mean\/variance \(forward\) at training call 3 \(trainer step 2\)/);
    for (const trainer of [trainerA, trainerB]) {
      const out = trainer.predict(input) as tf.Tensor;
      expect(Array.from(out.dataSync()).every(Number.isFinite), 'statistics put back').to.equal(true);
      out.dispose();
      trainer.dispose();
    }
    input.dispose();
    dataA.dispose();
    dataB.dispose();
  });
});
