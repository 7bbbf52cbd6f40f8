import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { arrayData, sgd, SilentLogger, Trainer, type TapfitError, type TapfitPlugin } from '../src';
import { tinyMlp, tinyTrainer, tmpDir, useBackend } from './fixtures';

/*
 * The non-finite guard (train/non-finite.ts): it fires on the default backend for every
 * route a NaN takes, says what helps (bad data, or weights an earlier update diverged),
 * a run that can only skip stops, and a diverged state is never saved.
 */

/** 32 samples of 4 features, 3 classes; sample `nanAt` (if any) holds a NaN feature. */
const samples = (nanAt?: number) => {
  const x = new Float32Array(32 * 4).map((_, i) => ((i * 5) % 7) / 7 - 0.4);
  if (nanAt !== undefined) x[4 * nanAt + 1] = NaN;
  return { x, y: Int32Array.from({ length: 32 }, (_, i) => i % 3) };
};
const finiteWeights = (t: Trainer) => Object.values(t.variables).every((v) => Array.from(v.dataSync()).every(Number.isFinite));
const caught = async (p: Promise<unknown>) => {
  try {
    await p;
  } catch (err) {
    return err as TapfitError;
  }
  throw new Error('expected a rejection');
};

function reluMlp(out: number, activation: 'softmax' | 'sigmoid' | 'linear') {
  const m = tf.sequential();
  m.add(tf.layers.dense({ units: 8, inputShape: [4], activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }));
  m.add(tf.layers.dense({ units: out, activation, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }));
  return m;
}

/** Plans every segment 'recompute': the executor runs the forward whose loss the guard reads without a tape (fused relu). */
const recomputeAll: TapfitPlugin = {
  name: 'recompute-all',
  core: '*',
  apply: ({ hooks }) => hooks.planMemory.tap('recompute-all', (plan) => ({ ...plan, segments: plan.segments.map((s) => ({ ...s, policy: 'recompute' as const })) })),
};

describe('non-finite guard on wasm (the default backend)', () => {
  useBackend('wasm');

  for (const [label, loss, build, plugins] of [
    ['a clipping loss (categorical cross-entropy)', 'categoricalCrossentropy', () => reluMlp(3, 'softmax'), []],
    ['the segment executor (fused relu in the untaped forward)', 'meanSquaredError', () => reluMlp(3, 'linear'), [recomputeAll]],
  ] as const) {
    it(`stops at the batch holding NaN with ${label}, names the sample, and applies nothing`, async () => {
      const { x } = samples(9);
      const targets = new Float32Array(32 * 3).map((_, i) => (Math.floor(i / 3) % 3 === i % 3 ? 1 : 0));
      const data = arrayData({ x, y: targets, xShape: [4], yShape: [3] });
      const t = new Trainer({ model: build(), loss, optimizer: sgd({ lr: 0.1 }), plugins: [...plugins], logger: new SilentLogger() });
      const err = await caught(t.fit(data, { epochs: 1, batchSize: 8, shuffle: false }));
      expect(err.code).to.equal('TAPFIT_E_NON_FINITE');
      expect(err.message).to.match(/at step 1 \(epoch 0, batch 1\): the batch's x holds NaN or Infinity \(sample 1 of the batch\)/);
      expect(t.step).to.equal(1);
      expect(finiteWeights(t)).to.equal(true);
      t.dispose();
      data.dispose();
    });
  }
});

describe('non-finite guard: messages, skipping and saving', () => {
  useBackend('cpu');

  it('a NaN gradient at a finite loss: the next step says the weights were already non-finite, naming them', async () => {
    const oneHot = new Float32Array(32 * 3).map((_, i) => (Math.floor(i / 3) % 3 === i % 3 ? 1 : 0));
    const data = arrayData({ x: samples().x, y: oneHot, xShape: [4], yShape: [3] });
    // sqrt at 0 has an infinite derivative: the loss is finite, its gradient NaN.
    const loss = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.add(tf.losses.softmaxCrossEntropy(yTrue, yPred), tf.sqrt(tf.sum(tf.square(tf.sub(yPred, yPred))))) as tf.Scalar;
    const t = tinyTrainer({ loss });
    const err = await caught(t.fit(data, { epochs: 1, batchSize: 8, shuffle: false }));
    expect(err.message).to.match(/at step 1 .*: the weights were already non-finite \(.*\), so an earlier update diverged/);
    expect(err.message).to.match(/needs an epsilon/);
    t.dispose();
    data.dispose();
  });

  it("'skip' refuses to go on once the weights are non-finite (every later step would be skipped)", async () => {
    const data = arrayData({ ...samples(), xShape: [4] });
    const t = tinyTrainer({ nonFinite: 'skip' });
    await t.fit(data, { epochs: 1, batchSize: 8, shuffle: false });
    Object.values(t.variables)[0].assign(tf.fill(Object.values(t.variables)[0].shape, NaN));
    const err = await caught(t.fit(data, { epochs: 2, batchSize: 8, shuffle: false }));
    expect(err.code).to.equal('TAPFIT_E_NON_FINITE');
    expect(err.message).to.match(/nonFinite: 'skip' cannot recover/);
    expect(t.skipped).to.equal(0);
    t.dispose();
    data.dispose();
  });

  it("'skip' stops when every step of an epoch is skipped (finite weights whose every loss overflows)", async () => {
    const data = arrayData({ ...samples(), xShape: [4] });
    const t = tinyTrainer({ nonFinite: 'skip', optimizer: sgd({ lr: 0.1 }) });
    await t.fit(data, { epochs: 1, batchSize: 8, shuffle: false });
    // Huge but finite logits: softmax cross-entropy of the wrong classes is Infinity for every batch.
    for (const v of Object.values(t.variables)) v.assign(tf.mul(tf.sign(tf.add(v, 1e-3)), 3e38));
    const err = await caught(t.fit(data, { epochs: 2, batchSize: 8, shuffle: false }));
    expect(err.code).to.equal('TAPFIT_E_NON_FINITE');
    expect(err.message).to.match(/every step of epoch 1 \(4\) had a non-finite loss and was skipped \(nonFinite: 'skip'\): the epoch trained nothing/);
    expect(t.skipped).to.equal(4);
    t.dispose();
    data.dispose();
  });

  it("'skip': the epoch's mean loss is over the steps applied (a skipped NaN batch made it NaN)", async () => {
    const data = arrayData({ ...samples(9), xShape: [4] });
    const t = tinyTrainer({ nonFinite: 'skip' });
    const losses: number[] = [];
    const h = await t.fit(data, { epochs: 1, batchSize: 8, shuffle: false, callbacks: [{ onBatchEnd: async (_b: number, logs?: tf.Logs) => void losses.push(logs!.loss as number) }] });
    expect(t.skipped).to.equal(1);
    expect(Number.isNaN(losses[1])).to.equal(true);
    const applied = [losses[0], losses[2], losses[3]];
    expect(h.history.loss[0]).to.be.closeTo(applied.reduce((a, b) => a + b) / 3, 1e-5);
    t.dispose();
    data.dispose();
  });

  it("'skip': a continued epoch whose remaining batches are all skipped is logged, not refused (its earlier steps were applied)", async () => {
    const data = arrayData({ ...samples(30), xShape: [4] });
    const t = tinyTrainer({ nonFinite: 'skip' });
    await t.fit(data, { epochs: 1, batchSize: 8, shuffle: false, callbacks: [{ onBatchEnd: async () => void (t.step === 3 && t.stop()) }] });
    expect(t.position).to.include({ epoch: 0, batch: 3 });
    const h = await t.fit(data, { epochs: 1, batchSize: 8, shuffle: false });
    expect(h.epoch).to.deep.equal([0]);
    expect(t.skipped).to.equal(1);
    expect(Number.isFinite(h.history.loss[0])).to.equal(true);
    t.dispose();
    data.dispose();
  });

  it('save() refuses NaN weights or optimizer state, writes nothing and keeps the earlier checkpoint', async () => {
    const data = arrayData({ ...samples(), xShape: [4] });
    const t = tinyTrainer();
    await t.fit(data, { epochs: 1, batchSize: 8, shuffle: false });
    const dir = tmpDir();
    await t.save(dir);
    const before = fs.readdirSync(dir).sort();
    const manifest = fs.readFileSync(path.join(dir, 'LATEST'), 'utf8');
    const [first] = Object.values(t.variables);
    const good = first.clone();
    first.assign(tf.fill(first.shape, NaN));
    let err = await caught(t.save(dir));
    expect(err.code).to.equal('TAPFIT_E_NON_FINITE');
    expect(err.message).to.contain(`model variables '${first.name}' hold NaN or Infinity: the run has diverged. Nothing was written`);
    // The momentum of the same run, diverged: refused too.
    first.assign(good);
    const velocities = (t as unknown as { stepParts: { stepper: { state: { momentum: { velocity: Record<string, tf.Tensor> } } } } }).stepParts.stepper.state.momentum.velocity;
    const [name, kept] = Object.entries(velocities)[0];
    velocities[name] = tf.fill(kept.shape, Infinity);
    err = await caught(t.save(dir));
    expect(err.message).to.match(/optimizer state of 'momentum' hold NaN or Infinity/);
    velocities[name].dispose();
    velocities[name] = kept;
    expect(fs.readdirSync(dir).sort()).to.deep.equal(before);
    expect(fs.readFileSync(path.join(dir, 'LATEST'), 'utf8')).to.equal(manifest);
    const resumed = await Trainer.resume(dir, { model: tinyMlp(2), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), logger: new SilentLogger() });
    expect(finiteWeights(resumed)).to.equal(true);
    good.dispose();
    resumed.dispose();
    t.dispose();
    data.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });
});
