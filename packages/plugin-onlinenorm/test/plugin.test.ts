import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, segmentModel, sgd, TapfitError } from '@tapfit/core';
import { batchNormModel, blobData, describeConformance, testTrainer } from '@tapfit/core/testing';
import { OnlineNorm, onlineNorm, onlineNormLayers, replaceBatchNorm } from '../src';


const options = { alphaFwd: 0.99, alphaBkw: 0.9 };

describeConformance({
  plugin: () => onlineNorm(options),
  trainer: () => ({ model: batchNormModel() }),
  twin: () => ({ model: replaceBatchNorm(batchNormModel(), options) }),
  twinTolerance: 0,
});

// The same with the recurrences on the device (the GPU path), whose NaN/Inf checks stay on
// the device and are read by the plugin once per step.
const onDevice = { ...options, recurrences: 'device' as const };
describeConformance({
  plugin: () => onlineNorm(onDevice),
  trainer: () => ({ model: batchNormModel() }),
  twin: () => ({ model: replaceBatchNorm(batchNormModel(), onDevice) }),
  twinTolerance: 0,
});

describe('onlineNorm plugin', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('composes with memoryBudget: setup measures the model without breaking OnlineNorm, and recomputed training equals stored training', async () => {
    const run = async (budget: boolean) => {
      const data = blobData(32);
      const sample = { x: tf.randomNormal([8, 4], 0, 1, 'float32', 3), y: tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32') };
      const trainer = testTrainer({ model: batchNormModel(), plugins: [onlineNorm(options)], ...(budget ? { memoryBudget: { budgetBytes: 1, sample } } : {}) }); // 1 byte: fails
      const tight = budget ? await trainer.setup().then(() => 'fits', (e: TapfitError) => e.code) : 'none';
      trainer.dispose();
      const fitting = testTrainer({ model: batchNormModel(), plugins: [onlineNorm(options)], ...(budget ? { memoryBudget: { budgetBytes: 4200, sample } } : {}) });
      await fitting.fit(data, { epochs: 2, batchSize: 8, shuffle: false });
      const policies = fitting.describe({ print: false }).memoryPlan!.segments.map((s) => s.policy);
      const weights = fitting.model.segments.flatMap((s) => s.params).map((v) => Array.from(v.dataSync()));
      fitting.dispose();
      data.dispose();
      tf.dispose([sample.x, sample.y]);
      return { tight, policies, weights };
    };
    const plain = await run(false);
    const planned = await run(true);
    expect(planned.tight).to.equal('TAPFIT_E_MEMORY'); // measured fine; only the budget is impossible
    expect(planned.policies).to.include('recompute');
    planned.weights.forEach((w, i) => w.forEach((x, j) => expect(Math.abs(x - plain.weights[i][j])).to.be.below(1e-5 * (1 + Math.abs(plain.weights[i][j])))));
  });

  it("memoryBudget's profiling does not advance the layers' call counters: they equal the steps with and without a budget", async () => {
    const STEPS = 8; // 2 epochs of 4 batches
    const callsAfter = async (budget: boolean) => {
      const data = blobData(32);
      const sample = { x: tf.randomNormal([8, 4], 0, 1, 'float32', 3), y: tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32') };
      const plugin = onlineNorm(options);
      const trainer = testTrainer({ model: batchNormModel(), plugins: [plugin], ...(budget ? { memoryBudget: { budgetBytes: 4200, sample } } : {}) });
      await trainer.setup();
      const atSetup = onlineNormLayers(trainer.model.layersModel!).map((l) => [l.state.trainingCalls, l.state.backwardCalls, l.state.unreadChecks]);
      await trainer.fit(data, { epochs: 2, batchSize: 8, shuffle: false });
      const calls = (plugin.saveState!().json as { calls: { training: number; backward: number }[] }).calls.map((c) => [c.training, c.backward]);
      trainer.dispose();
      data.dispose();
      tf.dispose([sample.x, sample.y]);
      return { atSetup, calls };
    };
    const plain = await callsAfter(false);
    const planned = await callsAfter(true);
    expect(plain.calls).to.deep.equal([[STEPS, STEPS], [STEPS, STEPS]]);
    expect(planned.atSetup).to.deep.equal([[0, 0, 0], [0, 0, 0]]);
    expect(planned.calls).to.deep.equal(plain.calls);
  });

  it('NaN statistics stop training with an error naming the layer and the trainer step', async () => {
    const x = new Float32Array(32 * 4).map((_, i) => ((i * 7) % 11) / 11);
    x.fill(NaN, 4 * 20, 4 * 21); // sample 20: batch 2 of 4 (batch size 8, no shuffling)
    const data = arrayData({ x, y: Int32Array.from({ length: 32 }, (_, i) => i % 3), xShape: [4] });
    const trainer = testTrainer({ model: batchNormModel(), plugins: [onlineNorm(options)] });
    let err: TapfitError | undefined;
    await trainer.fit(data, { epochs: 1, batchSize: 8, shuffle: false }).catch((e) => (err = e));
    expect(err?.code).to.equal('TAPFIT_E_NON_FINITE');
    expect(err?.message).to.match(/OnlineNorm 'bn1'.*training call 3 \(trainer step 2\)/);
    expect(trainer.step).to.equal(2);
    data.dispose();
    trainer.dispose();
  });

  it('swaps the BatchNorms at setup and trains the OnlineNorm statistics (M, V forward; u, v backward)', async () => {
    const original = batchNormModel();
    const trainer = testTrainer({ model: original, plugins: [onlineNorm({ ...options, replace: ['bn2'] })] });
    await trainer.setup();
    const model = trainer.model.layersModel!;
    expect(model).not.to.equal(original);
    expect(model.layers.map((l) => l.getClassName())).to.deep.equal(['Dense', 'BatchNormalization', 'Activation', 'Dense', 'OnlineNorm', 'Dense']);
    const [layer] = onlineNormLayers(model);
    const initial = [layer.state.mean, layer.state.u].map((t) => Array.from(t.dataSync()));
    const data = blobData(32);
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    expect(layer.state.trainingCalls).to.equal(4);
    expect(layer.state.backwardCalls).to.equal(4);
    const after = [layer.state.mean, layer.state.u].map((t) => Array.from(t.dataSync()));
    expect(after[0]).not.to.deep.equal(initial[0]);
    expect(after[1]).not.to.deep.equal(initial[1]);
    // predict/evaluate run in inference mode: no statistics change.
    const x = tf.ones([2, 4]);
    const frozen = Array.from(layer.state.mean.dataSync());
    tf.dispose(trainer.predict(x));
    await trainer.evaluate(data);
    expect(Array.from(layer.state.mean.dataSync())).to.deep.equal(frozen);
    tf.dispose(x);
    data.dispose();
    trainer.dispose();
  });

  it('segments pass ctx.recomputing to the layers: a recomputed forward repeats the output and leaves M, V alone', async () => {
    const trainer = testTrainer({ model: batchNormModel(), plugins: [onlineNorm(options)] });
    await trainer.setup();
    const segment = trainer.model.segments.find((s) => s.name === 'bn1')!;
    const layer = trainer.model.layersModel!.getLayer('bn1') as OnlineNorm;
    const x = tf.randomNormal([5, 8], 1, 2, 'float32', 3);
    const first = tf.tidy(() => segment.forward([x], { training: true, recomputing: false, step: 0 })[0].dataSync());
    const stats = [layer.state.mean, layer.state.variance].map((t) => Array.from(t.dataSync()));
    const again = tf.tidy(() => segment.forward([x], { training: true, recomputing: true, step: 0 })[0].dataSync());
    expect(Array.from(again)).to.deep.equal(Array.from(first));
    expect([layer.state.mean, layer.state.variance].map((t) => Array.from(t.dataSync()))).to.deep.equal(stats);
    expect(layer.recomputing, 'the flag is reset after the segment').to.equal(false);
    tf.dispose(x);
    trainer.dispose();
  });

  it('bad options fail when the plugin is created; a selector that matches nothing fails at setup', async () => {
    expect(() => onlineNorm({ alphaBkw: 1.2 })).to.throw(TapfitError, /online-norm: option 'alphaBkw' must be in \(0, 1\]/);
    expect(() => onlineNorm({ replace: 42 as never })).to.throw(/online-norm: option 'replace' must be/);
    const trainer = testTrainer({ model: batchNormModel(), plugins: [onlineNorm({ replace: ['bn3'] })] });
    let error: unknown;
    await trainer.setup().catch((e) => (error = e));
    expect(String(error)).to.match(/online-norm: option 'replace' names 'bn3', which is not a layer of the model.*bn1, bn2/);
    trainer.dispose();
  });

  it('a segment model (no tfjs-layers model) is a clear setup error', async () => {
    const w = tf.variable(tf.ones([4, 3]));
    const model = segmentModel([{ name: 'linear', params: [w], forward: ([x]) => [tf.matMul(x, w)] }], { inputShape: [4], outputShape: [3] });
    const trainer = testTrainer({ model, optimizer: sgd({ lr: 0.1 }), plugins: [onlineNorm()] });
    let error: unknown;
    await trainer.setup().catch((e) => (error = e));
    expect(String(error)).to.match(/online-norm: the trainer's model is a segment model without a tfjs-layers model/);
    trainer.dispose();
    w.dispose();
  });
});
