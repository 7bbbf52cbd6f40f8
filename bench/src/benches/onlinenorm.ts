import * as tf from '@tensorflow/tfjs';
import { adam, forwardSegments, permutation, selectBackend, sgd, SilentLogger, TensorData, Trainer, type TapfitPlugin } from '@tapfit/core';
import { loadMnist, mnistCnn } from '@tapfit/examples';
import { onlineNorm } from '@tapfit/plugin-onlinenorm';
import { calibrateBatchNorm, withCalibratedBatchNorm } from '../lib/batchnorm-statistics';
import { interleave } from '../lib/timing';
import { round, target, writeResults, type Target } from '../results';

/**
 * Online Normalization against BatchNorm on real MNIST digits, all trained by the tapfit
 * Trainer (the OnlineNorm models are the BatchNorm model with the plugin swapping its BN
 * layers).
 *
 * Speed: per-sample step time at batch 32 (target: ON <= 1.3x BN) and ON at batch 1,
 * interleaved rounds.
 *
 * Accuracy (unless `--no-accuracy`; issue #5): the demo CNN trained on the same digits in
 * the same order, `--epochs` passes (each pass reshuffled, the same order for every run),
 * as BatchNorm at batch 32, OnlineNorm at batch 32, OnlineNorm at batch 1 and no
 * normaliser at batch 1, SGD with momentum scaled per sample from one batch-32 reference
 * (scaledSgd). Test accuracy on 2,000 held-out digits after every pass, final train loss
 * and step time per sample; target: BN(b32) accuracy - ON(b1) accuracy <= 0.5 pp after
 * the last pass.
 *
 * `npm run bench -- onlinenorm [rounds] [--no-accuracy] [--samples=8000] [--epochs=3] [--seeds=3]`
 */

const BATCH = 32;
const STEPS = 10;

interface Case {
  name: string;
  layout: 'image' | 'flat';
  build: () => tf.LayersModel;
}

/** The paper's FMNIST setting: a 3-layer MLP with a normaliser after each hidden layer. */
function bnMlp(seed: number): tf.Sequential {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: seed * 10 + k });
  return tf.sequential({
    name: 'mnist_mlp_bn',
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [784], units: 256, kernelInitializer: init(1), useBias: false }),
      tf.layers.batchNormalization({ name: 'norm1' }),
      tf.layers.reLU({ name: 'relu1' }),
      tf.layers.dense({ name: 'fc2', units: 256, kernelInitializer: init(2), useBias: false }),
      tf.layers.batchNormalization({ name: 'norm2' }),
      tf.layers.reLU({ name: 'relu2' }),
      tf.layers.dense({ name: 'logits', units: 10, kernelInitializer: init(3) }),
    ],
  });
}

const cases: Case[] = [
  { name: 'cnn', layout: 'image', build: () => mnistCnn({ norm: 'batchNorm', seed: 1 }) },
  { name: 'mlp', layout: 'flat', build: () => bnMlp(1) },
];

function trainer(build: () => tf.LayersModel, plugins: TapfitPlugin[]): Trainer {
  return new Trainer({ model: build(), loss: 'softmaxCrossEntropy', optimizer: adam({ lr: 0.002 }), logger: new SilentLogger(), plugins, seed: 1 });
}

/** Runs one more epoch over `data` per call; returns the number of steps. */
async function epochRunner(t: Trainer, data: TensorData, batchSize: number): Promise<() => Promise<number>> {
  await t.setup();
  const steps = Math.ceil(data.size! / batchSize);
  return async () => {
    await t.fit(data, { epochs: 1, batchSize, shuffle: false });
    return steps;
  };
}

async function speed(c: Case, rounds: number) {
  const { train, test } = loadMnist({ train: BATCH * STEPS, test: 1, layout: c.layout, seed: 1 });
  test.dispose();
  const { train: single, test: t2 } = loadMnist({ train: STEPS * 2, test: 1, layout: c.layout, seed: 2 });
  t2.dispose();
  const timing = await interleave(
    {
      batchNorm: await epochRunner(trainer(c.build, []), train, BATCH),
      onlineNorm: await epochRunner(trainer(c.build, [onlineNorm()]), train, BATCH),
      onlineNormLs: await epochRunner(trainer(c.build, [onlineNorm({ ecm: 'ls' })]), train, BATCH),
      onlineNormBatch1: await epochRunner(trainer(c.build, [onlineNorm()]), single, 1),
    },
    rounds,
  );
  train.dispose();
  single.dispose();
  const perSample = {
    batchNorm: timing.batchNorm.msPerStep / BATCH,
    onlineNorm: timing.onlineNorm.msPerStep / BATCH,
    onlineNormLs: timing.onlineNormLs.msPerStep / BATCH,
    onlineNormBatch1: timing.onlineNormBatch1.msPerStep,
  };
  return { timing, perSample };
}

/**
 * The SGD reference, chosen at batch B_REF before any batch-1 run: PyTorch-form SGD with
 * momentum 0.9 (the conventional default) and lr 0.01, the best final training loss of
 * {0.01, 0.03, 0.1} for BatchNorm on a 3,200-digit slice of the training split (no test data).
 */
const B_REF = 32;
const LR_REF = 0.01;
const MOMENTUM_REF = 0.9;

/**
 * SGD with momentum for `batchSize`, by the per-sample scaling rule of docs/techniques.md §5.5:
 * the momentum horizon in samples stays fixed, m_B = m_ref^(B/B_ref), and so does each
 * sample's total step, lr_B / (1 - m_B) = (B/B_ref) lr_ref / (1 - m_ref). §5.5's
 * eta_B = eta_ref B/B_ref scales the effective rate eta = lr / (1 - m) (momentum as a
 * moving average); core's sgd is PyTorch's v = m v + g, so the factor (1 - m_B)/(1 - m_ref)
 * carries it over (without it, batch 1 would move ~30x farther per sample). Every run uses
 * this rule; at B = B_REF it is the reference itself.
 */
function scaledSgd(batchSize: number): { lr: number; momentum: number } {
  const momentum = MOMENTUM_REF ** (batchSize / B_REF);
  return { lr: (LR_REF * (batchSize / B_REF) * (1 - momentum)) / (1 - MOMENTUM_REF), momentum };
}

interface Arm {
  batchSize: number;
  norm: 'batchNorm' | 'none';
  /** OnlineNorm: the plugin (plugin defaults) swaps the BN model's BatchNorms at setup. */
  onlineNorm: boolean;
}

/** The issue's four runs of the demo CNN (a normaliser after each conv, or none). */
const arms: Record<string, Arm> = {
  batchNormBatch32: { batchSize: 32, norm: 'batchNorm', onlineNorm: false },
  onlineNormBatch32: { batchSize: 32, norm: 'batchNorm', onlineNorm: true },
  onlineNormBatch1: { batchSize: 1, norm: 'batchNorm', onlineNorm: true },
  noNormBatch1: { batchSize: 1, norm: 'none', onlineNorm: false },
};

const TEST = 2000;
/** Samples per interleaving round: all runs train on chunk k before any moves to k + 1. */
const CHUNK = 800;

interface ArmResult {
  batchSize: number;
  normalization: string;
  sgd: { lr: number; momentum: number };
  testAccuracy: number;
  /** After each pass; the last is testAccuracy. */
  testAccuracyPerEpoch: number[];
  testLoss: number;
  /** Mean training loss over the last chunk (the last 800 samples), as trained. */
  finalTrainLoss: number;
  trainLossPerChunk: number[];
  msPerSample: number;
  skippedSteps: number;
  /** BatchNorm only: scored with its own moving averages instead of calibrated statistics. */
  movingAverages?: { testAccuracy: number; testLoss: number };
}

/** 1 where the model's class (inference mode) is right, per test sample. */
async function correctness(t: Trainer, test: TensorData): Promise<Uint8Array> {
  const out = new Uint8Array(test.size);
  for (let start = 0; start < test.size; start += 500) {
    const size = Math.min(500, test.size - start);
    const hits = tf.tidy(() => {
      const logits = forwardSegments(t.model, tf.slice(test.x, start, size), { training: false, recomputing: false, step: t.step });
      return tf.cast(tf.equal(tf.argMax(logits, -1), tf.slice(test.y, start, size)), 'int32');
    });
    out.set(await hits.data(), start);
    hits.dispose();
  }
  return out;
}

/**
 * One seed of the accuracy experiment: the four arms, initialised from `seed`, train
 * `epochs` passes over the same digits in the same seeded order (a new order each pass),
 * interleaved by chunks so a slow spell of the shared machine hits all of them alike, and
 * are scored on the held-out digits in inference mode after every pass. BatchNorm is
 * scored with population statistics of the training digits (calibrateBatchNorm; its
 * moving averages are put back after the intermediate scores, so training is untouched);
 * its raw moving averages are reported too.
 */
async function accuracyRun(digits: TensorData, test: TensorData, seed: number, epochs: number) {
  const runs = Object.entries(arms).map(([name, arm]) => {
    const hyper = scaledSgd(arm.batchSize);
    const model = mnistCnn({ norm: arm.norm, seed });
    const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd(hyper), metrics: ['accuracy'], logger: new SilentLogger(), plugins: arm.onlineNorm ? [onlineNorm()] : [], seed });
    return { name, arm, hyper, trainer, ms: 0, lossPerChunk: [] as number[], accuracyPerEpoch: [] as number[] };
  });
  const bn = runs.find((r) => r.name === 'batchNormBatch32')!;
  const chunks = Math.ceil(digits.size / CHUNK);
  for (let epoch = 0; epoch < epochs; epoch++) {
    const order = tf.tensor1d(permutation(digits.size, seed, epoch), 'int32');
    const pass = new TensorData(tf.gather(digits.x, order), tf.gather(digits.y, order));
    order.dispose();
    for (let k = 0; k < chunks; k++) {
      const size = Math.min(CHUNK, pass.size - k * CHUNK);
      const chunk = new TensorData(tf.slice(pass.x, k * CHUNK, size), tf.slice(pass.y, k * CHUNK, size));
      for (const r of runs) {
        const t0 = performance.now();
        const { history } = await r.trainer.fit(chunk, { epochs: 1, batchSize: r.arm.batchSize, shuffle: false });
        r.ms += performance.now() - t0;
        r.lossPerChunk.push(history.loss[0]);
      }
      chunk.dispose();
      console.log(`  seed ${seed}, pass ${epoch + 1}: ${k * CHUNK + size}/${pass.size} samples; last-chunk train loss ${runs.map((r) => `${r.name} ${r.lossPerChunk.at(-1)!.toFixed(3)}`).join(', ')}`);
    }
    pass.dispose();
    if (epoch < epochs - 1) {
      for (const r of runs) {
        const score = async () => (await r.trainer.evaluate(test)).acc;
        r.accuracyPerEpoch.push(r === bn ? await withCalibratedBatchNorm(bn.trainer.model.layersModel!, digits.x, score) : await score());
      }
      console.log(`  seed ${seed}, after pass ${epoch + 1}: test accuracy ${runs.map((r) => `${r.name} ${r.accuracyPerEpoch.at(-1)}`).join(', ')}`);
    }
  }

  const movingAverages = await bn.trainer.evaluate(test);
  calibrateBatchNorm(bn.trainer.model.layersModel!, digits.x);
  const results: Record<string, ArmResult> = {};
  const correct: Record<string, Uint8Array> = {};
  const samples = digits.size * epochs;
  for (const r of runs) {
    const scores = await r.trainer.evaluate(test);
    correct[r.name] = await correctness(r.trainer, test);
    results[r.name] = {
      batchSize: r.arm.batchSize,
      normalization: r.arm.onlineNorm ? 'onlineNorm (plugin)' : r.arm.norm,
      sgd: { lr: round(r.hyper.lr, 10), momentum: round(r.hyper.momentum, 8) },
      testAccuracy: scores.acc,
      testAccuracyPerEpoch: [...r.accuracyPerEpoch, scores.acc],
      testLoss: round(scores.loss, 5),
      finalTrainLoss: round(r.lossPerChunk.at(-1)!, 5),
      trainLossPerChunk: r.lossPerChunk.map((l) => round(l, 4)),
      msPerSample: round(r.ms / samples, 3),
      skippedSteps: r.trainer.skipped,
    };
    r.trainer.dispose();
  }
  results.batchNormBatch32.movingAverages = { testAccuracy: movingAverages.acc, testLoss: round(movingAverages.loss, 5) };
  return { seed, arms: results, gap: pairedGap(correct.batchNormBatch32, correct.onlineNormBatch1) };
}

/** BN accuracy minus ON-batch-1 accuracy in percentage points, with its paired standard error. */
function pairedGap(bn: Uint8Array, on: Uint8Array) {
  let bnOnly = 0;
  let onOnly = 0;
  for (let i = 0; i < bn.length; i++) {
    if (bn[i] && !on[i]) bnOnly++;
    if (on[i] && !bn[i]) onOnly++;
  }
  const n = bn.length;
  const mean = (bnOnly - onOnly) / n;
  const variance = (bnOnly + onOnly) / n - mean * mean;
  return { percentagePoints: round(100 * mean, 3), standardErrorPp: round(100 * Math.sqrt(variance / n), 3), bnRightOnWrong: bnOnly, onRightBnWrong: onOnly };
}

/** The accuracy experiment over `seeds` seeds (1..seeds), on one fixed train/test split. */
async function accuracyExperiment(samples: number, epochs: number, seeds: number) {
  const { train: all, test } = loadMnist({ train: 10_000 - TEST, test: TEST, layout: 'image', seed: 1 });
  const digits = all.take(samples);
  all.dispose();
  const perSeed: Awaited<ReturnType<typeof accuracyRun>>[] = [];
  for (let seed = 1; seed <= seeds; seed++) perSeed.push(await accuracyRun(digits, test, seed, epochs));
  digits.dispose();
  test.dispose();
  const mean = (f: (r: (typeof perSeed)[number]) => number): number => perSeed.reduce((s, r) => s + f(r), 0) / perSeed.length;
  const keys = ['testAccuracy', 'testLoss', 'finalTrainLoss', 'msPerSample'] as const;
  const meanOverSeeds = Object.fromEntries(
    Object.keys(arms).map((name) => [name, Object.fromEntries(keys.map((k) => [k, round(mean((r) => r.arms[name][k]), 5)]))]),
  ) as Record<string, Record<(typeof keys)[number], number>>;
  const accuracyPerEpoch = Object.fromEntries(
    Object.keys(arms).map((name) => [name, Array.from({ length: epochs }, (_, e) => round(mean((r) => r.arms[name].testAccuracyPerEpoch[e]), 5))]),
  );
  return {
    samples,
    epochs,
    testSamples: TEST,
    chunk: CHUNK,
    reference: { batchSize: B_REF, lr: LR_REF, momentum: MOMENTUM_REF },
    meanOverSeeds,
    /** Test accuracy after each pass, mean over seeds. */
    accuracyPerEpoch,
    batchNormMovingAveragesTestAccuracy: round(mean((r) => r.arms.batchNormBatch32.movingAverages!.testAccuracy), 5),
    /** BN(b32) - ON(b1) test accuracy, mean over seeds, percentage points. */
    gapPp: round(mean((r) => r.gap.percentagePoints), 3),
    seeds: perSeed,
  };
}

export async function run(args: string[]): Promise<void> {
  const rounds = Number(args.find((a) => /^\d+$/.test(a)) ?? 7);
  const withAccuracy = !args.includes('--no-accuracy');
  const samples = Number(args.find((a) => a.startsWith('--samples='))?.slice('--samples='.length) ?? 8000);
  if (!Number.isInteger(samples) || samples < B_REF || samples % B_REF !== 0 || samples > 10_000 - TEST) {
    throw new Error(`onlinenorm: --samples must be a multiple of ${B_REF} between ${B_REF} and ${10_000 - TEST} (the package has 10,000 digits, ${TEST} held out); got ${samples}.`);
  }
  const epochs = Number(args.find((a) => a.startsWith('--epochs='))?.slice('--epochs='.length) ?? 3);
  if (!Number.isInteger(epochs) || epochs < 1) throw new Error(`onlinenorm: --epochs must be a positive integer; got ${epochs}.`);
  const seeds = Number(args.find((a) => a.startsWith('--seeds='))?.slice('--seeds='.length) ?? 3);
  if (!Number.isInteger(seeds) || seeds < 1) throw new Error(`onlinenorm: --seeds must be a positive integer; got ${seeds}.`);
  const backend = await selectBackend((process.env.TAPFIT_BACKEND as 'auto') ?? 'auto');
  console.log(`${rounds} interleaved rounds; batch ${BATCH} x ${STEPS} steps, batch 1 x ${STEPS * 2} steps`);
  const results: Record<string, unknown> = {};
  const targets: Target[] = [];
  const rows: Record<string, unknown>[] = [];
  for (const c of cases) {
    const { timing, perSample } = await speed(c, rounds);
    results[c.name] = {
      msPerStep: Object.fromEntries(Object.entries(timing).map(([k, v]) => [k, round(v.msPerStep, 3)])),
      msPerSample: Object.fromEntries(Object.entries(perSample).map(([k, v]) => [k, round(v, 4)])),
      samples: timing,
    };
    rows.push({
      model: c.name,
      'BN ms/sample (b32)': round(perSample.batchNorm, 3),
      'ON ms/sample (b32)': round(perSample.onlineNorm, 3),
      'ON-ls ms/sample (b32)': round(perSample.onlineNormLs, 3),
      'ON ms/sample (b1)': round(perSample.onlineNormBatch1, 3),
    });
    targets.push(target(`${c.name}: OnlineNorm / BatchNorm per-sample step time at batch ${BATCH}`, perSample.onlineNorm / perSample.batchNorm, 'max', 1.3));
  }
  console.table(rows);

  if (withAccuracy) {
    console.log(`accuracy experiment: demo CNN, ${samples} training digits, ${epochs} pass(es), ${TEST} held out, ${seeds} seed(s)`);
    const acc = await accuracyExperiment(samples, epochs, seeds);
    results.accuracy = acc;
    const m = acc.meanOverSeeds;
    console.table(
      Object.keys(arms).map((name) => ({
        run: name,
        'test acc': m[name].testAccuracy,
        'test loss': m[name].testLoss,
        'final train loss': m[name].finalTrainLoss,
        'ms/sample': m[name].msPerSample,
      })),
    );
    console.log(`BN(b32) with its moving averages: test acc ${acc.batchNormMovingAveragesTestAccuracy}`);
    for (const r of acc.seeds) console.log(`seed ${r.seed}: BN(b32) - ON(b1) = ${r.gap.percentagePoints} pp (paired standard error ${r.gap.standardErrorPp} pp)`);
    targets.push(target('BatchNorm at batch 32 test accuracy minus OnlineNorm at batch 1 (percentage points)', acc.gapPp, 'max', 0.5));
  }
  writeResults('onlinenorm', { backend: backend.name, batch: BATCH, stepsPerRound: STEPS, rounds, results }, targets);
}
