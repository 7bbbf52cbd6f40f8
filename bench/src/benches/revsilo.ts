/**
 * Reversible networks (@tapfit/plugin-revsilo): what training without stored activations
 * buys and costs.
 *
 *   npm run bench -- revsilo [--quick] [--reps=3] [--sections=depthwise,depth,unet,training]
 *
 * - depthwise: the exact ways to compute TF.js's missing depthwise 3-D convolution, timed
 *   (forward + both gradients), which picked the package's default.
 * - depth (a): a scaled-down RevBiFPN classifier (width 0.25, 4 streams, 64x64 RGB, batch
 *   32) with 2, 4, 8, 16 extension silos, reversible (revsilo's plan: every reversible
 *   segment 'invert') against the same network with every segment stored, both through
 *   the segment executor: peak training bytes above the pre-step baseline, the planner's
 *   prediction of both, step times (interleaved, paired), and the whole stack's
 *   reconstruction error.
 * - unet (b): the reversible 3-D U-Net and its non-reversible twin under one budget, fixed
 *   before searching: the twin's peak at the reference configuration (levels 3, 4 blocks
 *   per level, base 8 channels, expansion 4, instance norm, 16^3 volume, batch 1). Each
 *   axis (cube side, blocks per level, base channels) is searched upwards with the others
 *   at the reference; the largest value whose measured peak fits is reported. The twin's
 *   peak is the smaller of plain autodiff and the executor storing every segment (the
 *   executor counts a handle per skip it carries, which would flatter the reversible net).
 * - training (c): RevBiFPN (3 streams, E = 2) on MNIST resized to 32x32, SGD lr 0.0125
 *   (0.1 at batch 256 scaled to 32) with momentum 0.9, one epoch of 150 steps; the U-Net
 *   (levels 3, 2 blocks, base 8) on synthetic 16^3 volumes (a bright sphere and a dark cube
 *   in noise), Adam lr 0.002, 60 steps; each reversible and stored, same seed and data
 *   order: per-step losses, test accuracy / Dice (and Dice by chance). A control run trains
 *   the stored twin through the segment executor (exact backprop, one tape per segment):
 *   its loss-curve gap to plain autodiff separates the executor's own effect from the
 *   rebuild's. These use the builders' default exact (fixed-point) arithmetic; a float32
 *   pair (reversible and stored, `fixedPoint: 0`) shows what plain float32 rebuilding
 *   drifts by.
 *
 * Peak bytes are tf.profile(step).peakBytes minus the bytes live before it (TF.js's
 * accounting: every handle counts, clones included); the step is the loss and gradient
 * computation, the update is the same for both and left out. wasm backend, one thread.
 * tf.profile's peak takes Math.max over every kernel, so the bench runs with a larger
 * stack (the stored twin at 16 silos launches about 10^5 kernels).
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import {
  adam,
  AutodiffBackprop,
  losses,
  predictPeakBytes,
  profileSegments,
  SegmentExecutor,
  selectBackend,
  sgd,
  SilentLogger,
  storeAllPlan,
  tensorData,
  Tokens,
  Trainer,
  trainableVariables,
  type Backprop,
  type LossFn,
  type MemoryPlan,
  type TapfitPlugin,
  type TrainableModel,
} from '@tapfit/core';
import { seededRandom } from '@tapfit/core/testing';
import { loadMnist } from '@tapfit/examples';
import { depthwise3d, diceCrossEntropy, fixedPointQuantizer, diceScores, reversiblePlan, revBiFPN, reversibleUNet3d, revsilo, type Depthwise3dMethod, type ReversibleUNet3dOptions } from '@tapfit/plugin-revsilo';
import { lineChartSvg, writeSvg } from '../lib/chart';
import { median, resultsDir, round, target, writeResults, type Target } from '../results';

const STACK_KB = 6000;
/** SGD's 0.1 at batch 256 scaled linearly to batch 32. */
const MNIST_LR = 0.0125;
/** Adam's usual step for small conv nets; one epoch of 120 volumes in batches of 2 is 60 steps. */
const UNET_LR = 0.002;
const UNET_TRAIN_VOLUMES = 120;
const xent = losses.softmaxCrossEntropy;
const mib = (b: number): number => round(b / 2 ** 20, 2);
const training = { training: true, recomputing: false, step: 0 };

function labels(n: number, classes: number): tf.Tensor {
  return tf.tensor1d(Array.from({ length: n }, (_, i) => i % classes), 'int32');
}

/** One loss + gradient computation; returns nothing, frees everything. */
function step(backprop: Backprop, model: TrainableModel, plan: MemoryPlan, x: tf.Tensor, y: tf.Tensor, loss: LossFn): void {
  const r = backprop.compute({ x, y, segments: model.segments, ctx: training, variables: trainableVariables(model), plan, loss });
  r.value.dataSync();
  tf.dispose([r.value, ...Object.values(r.grads)]);
}

async function peakOf(run: () => void): Promise<number> {
  const start = tf.memory().numBytes;
  const info = await tf.profile(run);
  return info.peakBytes - start;
}

// ---------------------------------------------------------------------------------------
// depthwise 3-D

async function depthwiseSection(reps: number): Promise<Record<string, unknown>> {
  const shape = [1, 16, 16, 16, 16];
  const x = tf.randomNormal(shape, 0, 1, 'float32', 1);
  const w = tf.randomNormal([3, 3, 3, 16], 0, 1, 'float32', 2);
  const dy = tf.randomNormal(shape, 0, 1, 'float32', 3);
  const methods: Depthwise3dMethod[] = ['slices', 'blockDiagonal', 'perChannel'];
  const run = (m: Depthwise3dMethod) =>
    tf.tidy(() => {
      const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => depthwise3d(a, b, 1, m))([x, w], dy);
      dx.dataSync();
      dw.dataSync();
    });
  const times = new Map<string, number[]>(methods.map((m) => [m, []]));
  for (const m of methods) run(m);
  for (let r = 0; r < reps; r++) {
    for (const m of methods) {
      const t0 = performance.now();
      run(m);
      times.get(m)!.push(performance.now() - t0);
    }
  }
  tf.dispose([x, w, dy]);
  const ms = Object.fromEntries(methods.map((m) => [m, round(median(times.get(m)!), 1)]));
  console.log('depthwise 3-D, forward + both gradients, [1,16,16,16,16] 3x3x3, median ms:', ms);
  return { shape, kernel: [3, 3, 3], msForwardAndGradients: ms, reps };
}

// ---------------------------------------------------------------------------------------
// (a) memory against depth

interface DepthRow {
  extensions: number;
  segments: number;
  params: number;
  paramBytes: number;
  reversiblePeakBytes: number;
  storedPeakBytes: number;
  reversiblePredictedBytes: number;
  storedPredictedBytes: number;
  reversiblePredictionError: number;
  storedPredictionError: number;
  reversibleMs: number;
  storedMs: number;
  timeRatio: number;
  reconstructionRelError: number;
  reconstructionRelErrorFloat32: number;
}

async function depthSection(quick: boolean, reps: number): Promise<{ rows: DepthRow[]; batch: number; config: Record<string, unknown> }> {
  const depths = quick ? [2, 4] : [2, 4, 8, 16];
  const batch = quick ? 8 : 32;
  const config = { width: 0.25, streams: 4, inputSize: 64, classes: 10, dropout: 0, seed: 1 };
  const rows: DepthRow[] = [];
  const executor = new SegmentExecutor();
  for (const extensions of depths) {
    const model = revBiFPN({ ...config, extensions });
    const x = tf.randomNormal([batch, 64, 64, 3], 0, 1, 'float32', 1);
    const y = labels(batch, 10);
    const names = model.segments.map((s) => s.name);
    const plans = { reversible: reversiblePlan(model), stored: storeAllPlan(names) };
    const run = (which: 'reversible' | 'stored') => step(executor, model, plans[which], x, y, xent);
    run('reversible');
    run('stored');
    const reversiblePeakBytes = await peakOf(() => run('reversible'));
    const storedPeakBytes = await peakOf(() => run('stored'));
    const profile = await profileSegments(model, { x, y }, xent);
    const predict = (plan: MemoryPlan) => predictPeakBytes(profile, plan.segments.map((s) => s.policy));
    const times = { reversible: [] as number[], stored: [] as number[] };
    for (let r = 0; r < reps; r++) {
      for (const which of (r % 2 ? ['stored', 'reversible'] : ['reversible', 'stored']) as ('reversible' | 'stored')[]) {
        const t0 = performance.now();
        run(which);
        times[which].push(performance.now() - t0);
      }
    }
    // The whole reversible stack forward, then inverted: the rebuilt input against the one
    // the stack computed with (rounded to the fixed-point grid in exact arithmetic, the
    // default), and the same for the plain float32 build of the same weights.
    const rebuildError = (m: typeof model, bits: number) =>
      tf.tidy(() => {
        const stack = m.segments.filter((s) => s.inverse);
        const [raw] = m.segments[0].forward([x], training);
        const input = bits ? fixedPointQuantizer('input', bits)!(raw) : raw;
        let zs = [input];
        for (const s of stack) zs = s.forward(zs, training);
        for (const s of [...stack].reverse()) zs = s.inverse!(zs, { ...training, recomputing: true });
        return tf.max(tf.abs(tf.sub(zs[0], input))).dataSync()[0] / tf.max(tf.abs(input)).dataSync()[0];
      });
    const reconstructionRelError = rebuildError(model, model.config.settings.fixedPoint ?? 0);
    const floatModel = revBiFPN({ ...config, extensions, fixedPoint: 0 });
    const reconstructionRelErrorFloat32 = rebuildError(floatModel, 0);
    floatModel.dispose();
    const row: DepthRow = {
      extensions,
      segments: model.segments.length,
      params: model.layersModel.countParams(),
      paramBytes: trainableVariables(model).reduce((a, v) => a + 4 * v.size, 0),
      reversiblePeakBytes,
      storedPeakBytes,
      reversiblePredictedBytes: predict(plans.reversible),
      storedPredictedBytes: predict(plans.stored),
      reversiblePredictionError: 0,
      storedPredictionError: 0,
      reversibleMs: round(median(times.reversible), 1),
      storedMs: round(median(times.stored), 1),
      timeRatio: round(median(times.reversible.map((t, i) => t / times.stored[i])), 3),
      reconstructionRelError,
      reconstructionRelErrorFloat32,
    };
    row.reversiblePredictionError = round(row.reversiblePredictedBytes / reversiblePeakBytes - 1, 5);
    row.storedPredictionError = round(row.storedPredictedBytes / storedPeakBytes - 1, 5);
    rows.push(row);
    console.log(
      `RevBiFPN E=${extensions}: peak MiB reversible ${mib(reversiblePeakBytes)} (predicted ${mib(row.reversiblePredictedBytes)}), stored ${mib(storedPeakBytes)} (predicted ${mib(row.storedPredictedBytes)}); ` +
        `ms reversible ${row.reversibleMs}, stored ${row.storedMs} (ratio ${row.timeRatio}); rebuild error ${reconstructionRelError.toExponential(2)} (float32: ${reconstructionRelErrorFloat32.toExponential(2)})`,
    );
    tf.dispose([x, y]);
    model.dispose();
  }
  return { rows, batch, config: { ...config, extensions: depths } };
}

// ---------------------------------------------------------------------------------------
// (b) the 3-D U-Net under one budget

type UNetConfig = { side: number; blocks: number; base: number };

async function unetPeak(kind: 'reversible' | 'twin', c: UNetConfig, common: ReversibleUNet3dOptions): Promise<{ bytes: number; autodiff?: number; stored?: number }> {
  const model = reversibleUNet3d({ ...common, blocksPerLevel: c.blocks, baseChannels: c.base });
  const x = tf.randomNormal([1, c.side, c.side, c.side, 1], 0, 1, 'float32', 4);
  const y = tf.randomUniform([1, c.side, c.side, c.side], 0, 3, 'int32', 5);
  const loss = diceCrossEntropy({ classes: 3 });
  try {
    if (kind === 'reversible') return { bytes: await peakOf(() => step(new SegmentExecutor(), model, reversiblePlan(model), x, y, loss)) };
    const twin = model.stored();
    const names = twin.segments.map((s) => s.name);
    const autodiff = await peakOf(() => step(new AutodiffBackprop(), twin, storeAllPlan(names), x, y, loss));
    const stored = await peakOf(() => step(new SegmentExecutor(), twin, storeAllPlan(names), x, y, loss));
    return { bytes: Math.min(autodiff, stored), autodiff, stored };
  } finally {
    tf.dispose([x, y]);
    model.dispose();
  }
}

async function unetSection(quick: boolean): Promise<Record<string, unknown> & { ratios: Record<string, number>; best: Record<string, UNetConfig> }> {
  const common: ReversibleUNet3dOptions = { levels: quick ? 2 : 3, expandRatio: 4, norm: 'instance', classes: 3, inputChannels: 1, seed: 1 };
  const reference: UNetConfig = quick ? { side: 8, blocks: 2, base: 4 } : { side: 16, blocks: 4, base: 8 };
  const multiple = 2 ** ((common.levels ?? 3) - 1);
  const axes: Record<keyof UNetConfig, number[]> = quick
    ? { side: [8, 10, 12, 14, 16], blocks: [2, 3, 4], base: [4, 6, 8] }
    : { side: [16, 20, 24, 28, 32, 36, 40], blocks: [4, 5, 6, 8, 10, 12, 16], base: [8, 10, 12, 14, 16, 20, 24, 28, 32] };
  axes.side = axes.side.filter((s) => s % multiple === 0);
  const twinRef = await unetPeak('twin', reference, common);
  const budget = twinRef.bytes;
  console.log(`U-Net budget: the twin's peak at the reference ${JSON.stringify(reference)}: ${mib(budget)} MiB (autodiff ${mib(twinRef.autodiff!)}, executor store ${mib(twinRef.stored!)})`);
  const searches: Record<string, { value: number; peakBytes: number; fits: boolean }[]> = {};
  const best: Record<string, UNetConfig> = {};
  for (const kind of ['twin', 'reversible'] as const) {
    best[kind] = { ...reference };
    for (const axis of Object.keys(axes) as (keyof UNetConfig)[]) {
      const tried: { value: number; peakBytes: number; fits: boolean }[] = [];
      for (const value of axes[axis]) {
        const c = { ...reference, [axis]: value };
        const p = value === reference[axis] && kind === 'twin' ? twinRef : await unetPeak(kind, c, common);
        const fits = p.bytes <= budget;
        tried.push({ value, peakBytes: p.bytes, fits });
        console.log(`  ${kind} ${axis} ${value}: ${mib(p.bytes)} MiB ${fits ? 'fits' : 'over budget'}`);
        if (!fits) break;
        best[kind][axis] = value;
      }
      searches[`${kind}.${axis}`] = tried;
    }
  }
  const capped = Object.fromEntries((Object.keys(axes) as (keyof UNetConfig)[]).map((a) => [a, best.reversible[a] === axes[a][axes[a].length - 1]]));
  const ratios = {
    volume: (best.reversible.side / best.twin.side) ** 3,
    blocks: best.reversible.blocks / best.twin.blocks,
    channels: best.reversible.base / best.twin.base,
  };
  console.log('U-Net largest fitting:', best, 'ratios', ratios, 'search capped (reversible):', capped);
  return { common, reference, budgetBytes: budget, twinAtReference: twinRef, axes, searches, best, ratios, searchCappedForReversible: capped };
}

// ---------------------------------------------------------------------------------------
// (c) training runs

/**
 * reversible: revsilo's plan; stored: the twin, plain autodiff; control: the twin through
 * the segment executor storing every segment (exact backprop, one tape per segment): its
 * gap to 'stored' separates what the executor itself changes from what rebuilding does.
 * All three use the builders' default exact (fixed-point) arithmetic; the float32 pair
 * repeats reversible and stored with `fixedPoint: 0`, the papers' plain arithmetic.
 */
const VERSIONS = ['reversible', 'stored', 'control', 'reversibleFloat32', 'storedFloat32'] as const;
type Version = (typeof VERSIONS)[number];
const isFloat32 = (version: Version): boolean => version.endsWith('Float32');
const isReversible = (version: Version): boolean => version.startsWith('reversible');

function pluginsFor(version: Version): TapfitPlugin[] {
  if (isReversible(version)) return [revsilo()];
  if (version === 'stored' || version === 'storedFloat32') return [];
  return [{ name: 'executor-store', core: '*', provides: [Tokens.Backprop], apply: ({ services }) => services.register(Tokens.Backprop, new SegmentExecutor()) }];
}

function lossRecorder(into: number[]): TapfitPlugin {
  return { name: 'loss-recorder', core: '*', apply: ({ hooks }) => hooks.batchEnd.tap('loss-recorder', (i) => void into.push(i.loss())) };
}

/** Largest |a - b| / |b| over the first `n` steps. */
function curveGap(a: number[], b: number[], n: number): number {
  let worst = 0;
  for (let i = 0; i < Math.min(n, a.length, b.length); i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / Math.abs(b[i]));
  return worst;
}

async function mnistTraining(quick: boolean): Promise<Record<string, unknown>> {
  const mnist = loadMnist({ train: quick ? 640 : 4800, test: quick ? 256 : 1000, layout: 'image', seed: 1 });
  const resize = (d: { x: tf.Tensor; y: tf.Tensor }) => tensorData(tf.image.resizeBilinear(d.x as tf.Tensor4D, [32, 32]), d.y);
  const train = resize(mnist.train);
  const test = resize(mnist.test);
  const out: Record<string, unknown> = { data: `MNIST (mnist package), ${train.size} train / ${test.size} test, resized to 32x32`, batchSize: 32, epochs: 1, optimizer: `sgd lr ${MNIST_LR} momentum 0.9` };
  const curves: Record<string, number[]> = {};
  for (const version of VERSIONS) {
    const model = revBiFPN({ width: 0.25, streams: 3, extensions: 2, inputSize: 32, inputChannels: 1, classes: 10, dropout: 0, seed: 1, ...(isFloat32(version) ? { fixedPoint: 0 } : {}) });
    const steps: number[] = [];
    const trainer = new Trainer({
      model: isReversible(version) ? model : model.stored(),
      loss: 'softmaxCrossEntropy',
      metrics: ['accuracy'],
      optimizer: sgd({ lr: MNIST_LR, momentum: 0.9 }),
      plugins: [...pluginsFor(version), lossRecorder(steps)],
      seed: 1,
      logger: new SilentLogger(),
    });
    const t0 = performance.now();
    await trainer.fit(train, { epochs: 1, batchSize: 32 });
    const ms = (performance.now() - t0) / steps.length;
    const evaluation = await trainer.evaluate(test, { batchSize: 100 });
    curves[version] = steps;
    out[version] = { steps: steps.length, msPerStep: round(ms, 1), testAccuracy: round(evaluation.acc, 4), testLoss: round(evaluation.loss, 4), lossCurve: steps.map((l) => round(l, 6)) };
    console.log(`RevBiFPN MNIST ${version}: ${steps.length} steps, ${round(ms, 0)} ms/step, test accuracy ${round(evaluation.acc, 4)}`);
    trainer.dispose();
    model.dispose();
  }
  out.curveGapFirst50 = curveGap(curves.reversible, curves.stored, 50);
  out.controlCurveGapFirst50 = curveGap(curves.control, curves.stored, 50);
  out.float32CurveGapFirst50 = curveGap(curves.reversibleFloat32, curves.storedFloat32, 50);
  console.log(`  loss-curve gap over the first 50 steps, reversible vs stored: exact ${out.curveGapFirst50}, float32 ${out.float32CurveGapFirst50}; control ${out.controlCurveGapFirst50}`);
  train.dispose();
  test.dispose();
  mnist.train.dispose();
  mnist.test.dispose();
  return out;
}

/** Volumes with a bright sphere (class 1) and a dark cube (class 2) in Gaussian noise. */
function syntheticVolumes(n: number, side: number, seed: number): { x: tf.Tensor; y: tf.Tensor } {
  const rnd = seededRandom(seed);
  const x = new Float32Array(n * side ** 3);
  const y = new Int32Array(n * side ** 3);
  const gauss = () => Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd());
  for (let s = 0; s < n; s++) {
    const r = 2 + rnd() * 2;
    const c = [0, 1, 2].map(() => r + rnd() * (side - 2 * r));
    const h = 1.5 + rnd() * 1.5;
    const q = [0, 1, 2].map(() => h + rnd() * (side - 2 * h));
    for (let i = 0; i < side; i++) {
      for (let j = 0; j < side; j++) {
        for (let k = 0; k < side; k++) {
          const v = s * side ** 3 + (i * side + j) * side + k;
          const p = [i + 0.5, j + 0.5, k + 0.5];
          let label = 0;
          if (p.reduce((a, pi, d) => a + (pi - c[d]) ** 2, 0) <= r * r) label = 1;
          if (p.every((pi, d) => Math.abs(pi - q[d]) <= h)) label = 2;
          y[v] = label;
          x[v] = (label === 1 ? 1 : label === 2 ? -1 : 0) + 0.6 * gauss();
        }
      }
    }
  }
  return { x: tf.tensor(x, [n, side, side, side, 1]), y: tf.tensor(y, [n, side, side, side], 'int32') };
}

async function unetTraining(quick: boolean): Promise<Record<string, unknown>> {
  const side = quick ? 8 : 16;
  const trainSet = syntheticVolumes(quick ? 8 : UNET_TRAIN_VOLUMES, side, 11);
  const testSet = syntheticVolumes(8, side, 12);
  const train = tensorData(trainSet.x, trainSet.y);
  const options: ReversibleUNet3dOptions = { levels: quick ? 2 : 3, blocksPerLevel: 2, baseChannels: 8, expandRatio: 2, classes: 3, norm: 'instance', seed: 1 };
  const loss = diceCrossEntropy({ classes: 3 });
  const out: Record<string, unknown> = { data: `synthetic ${side}^3 volumes: a bright sphere (class 1) and a dark cube (class 2) in noise (sd 0.6); ${train.size} train / 8 test`, model: options, batchSize: 2, epochs: 1, optimizer: `adam lr ${UNET_LR}`, loss: 'soft Dice + cross-entropy' };
  const curves: Record<string, number[]> = {};
  for (const version of VERSIONS) {
    const model = reversibleUNet3d({ ...options, ...(isFloat32(version) ? { fixedPoint: 0 } : {}) });
    const steps: number[] = [];
    const trainer = new Trainer({
      model: isReversible(version) ? model : model.stored(),
      loss,
      optimizer: adam({ lr: UNET_LR }),
      plugins: [...pluginsFor(version), lossRecorder(steps)],
      seed: 1,
      logger: new SilentLogger(),
    });
    const t0 = performance.now();
    await trainer.fit(train, { epochs: 1, batchSize: 2 });
    const ms = (performance.now() - t0) / steps.length;
    const logits = trainer.predict(testSet.x);
    const dice = diceScores(testSet.y, logits, 3);
    logits.dispose();
    curves[version] = steps;
    out[version] = { steps: steps.length, msPerStep: round(ms, 1), testDice: dice.map((d) => round(d, 4)), foregroundDice: round((dice[1] + dice[2]) / 2, 4), lossCurve: steps.map((l) => round(l, 6)) };
    console.log(`U-Net synthetic ${version}: ${steps.length} steps, ${round(ms, 0)} ms/step, test Dice ${dice.map((d) => d.toFixed(3)).join(' / ')}`);
    trainer.dispose();
    model.dispose();
  }
  // Chance: labels drawn at random with the test set's class frequencies give Dice_c = f_c in expectation.
  const counts = Array.from(tf.tidy(() => tf.sum(tf.oneHot(tf.reshape(testSet.y, [-1]) as tf.Tensor1D, 3), 0).dataSync()));
  const total = counts.reduce((a, b) => a + b, 0);
  out.chanceForegroundDice = round((counts[1] / total + counts[2] / total) / 2, 4);
  out.curveGapFirst50 = curveGap(curves.reversible, curves.stored, 50);
  out.controlCurveGapFirst50 = curveGap(curves.control, curves.stored, 50);
  out.float32CurveGapFirst50 = curveGap(curves.reversibleFloat32, curves.storedFloat32, 50);
  console.log(`  loss-curve gap over the first 50 steps, reversible vs stored: exact ${out.curveGapFirst50}, float32 ${out.float32CurveGapFirst50}; control ${out.controlCurveGapFirst50}`);
  train.dispose();
  tf.dispose([testSet.x, testSet.y]);
  return out;
}

// ---------------------------------------------------------------------------------------

export function memoryChart(rows: DepthRow[], batch: number): Promise<string> {
  const lines: [string, (r: DepthRow) => number][] = [
    ['stored, measured', (r) => r.storedPeakBytes],
    ['stored, predicted', (r) => r.storedPredictedBytes],
    ['reversible, measured', (r) => r.reversiblePeakBytes],
    ['reversible, predicted', (r) => r.reversiblePredictedBytes],
  ];
  return lineChartSvg({
    title: `RevBiFPN (width 0.25, 64x64, batch ${batch}): peak training memory`,
    x: { field: 'silos', title: 'extension silos E', scale: 'log', ticks: rows.map((r) => r.extensions) },
    y: { field: 'mib', title: 'MiB above the pre-step baseline', scale: 'log' },
    series: 'series',
    data: lines.flatMap(([series, f]) => rows.map((r) => ({ series, silos: r.extensions, mib: f(r) / 2 ** 20 }))),
  });
}

export async function run(args: string[]): Promise<void> {
  if (!process.execArgv.some((a) => a.startsWith('--stack-size'))) {
    // tf.profile's Math.max over every kernel needs a deeper stack than Node's default.
    const r = spawnSync(process.execPath, [`--stack-size=${STACK_KB}`, path.join(__dirname, '..', 'run.js'), 'revsilo', ...args], { stdio: 'inherit' });
    process.exitCode = r.status ?? 1;
    return;
  }
  const arg = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  const quick = args.includes('--quick');
  const reps = Number(arg('reps') ?? (quick ? 1 : 3));
  const sections = new Set((arg('sections') ?? 'depthwise,depth,unet,training').split(','));
  await selectBackend('wasm', { log: false });
  tf.env().set('PROD', true);
  const started = performance.now();
  const data: Record<string, unknown> = { backend: tf.getBackend(), quick, reps };
  const targets: Target[] = [];

  if (sections.has('depthwise')) data.depthwise3d = await depthwiseSection(quick ? 2 : 5);

  if (sections.has('depth')) {
    const { rows, batch, config } = await depthSection(quick, reps);
    const [first, last] = [rows[0], rows[rows.length - 1]];
    data.revbifpnDepth = { batch, config, rows };
    fs.mkdirSync(resultsDir, { recursive: true });
    writeSvg(path.join(resultsDir, 'revsilo-memory.svg'), await memoryChart(rows, batch));
    targets.push(target(`RevBiFPN: reversible peak at ${last.extensions} extension silos / at ${first.extensions} (flat in depth)`, last.reversiblePeakBytes / first.reversiblePeakBytes, 'max', 1.15));
    targets.push(target(`RevBiFPN at ${last.extensions} silos: stored peak / reversible peak`, last.storedPeakBytes / last.reversiblePeakBytes, 'min', 5));
    targets.push(target(`RevBiFPN at ${last.extensions} silos: reversible step time / stored (median of paired ratios)`, last.timeRatio, 'max', 1.6));
    targets.push(target('RevBiFPN: planner prediction error, worst row |predicted / measured - 1|', Math.max(...rows.flatMap((r) => [Math.abs(r.reversiblePredictionError), Math.abs(r.storedPredictionError)])), 'max', 0.01));
  }

  if (sections.has('unet')) {
    const u = await unetSection(quick);
    data.unetBudget = u;
    targets.push(target('3-D U-Net at one budget: largest input volume, reversible / twin', u.ratios.volume, 'min', 2));
    targets.push(target('3-D U-Net at one budget: most blocks per level, reversible / twin', u.ratios.blocks, 'min', 1.25));
    targets.push(target('3-D U-Net at one budget: most base channels, reversible / twin', u.ratios.channels, 'min', 2));
  }

  if (sections.has('training')) {
    const m = await mnistTraining(quick);
    const u = await unetTraining(quick);
    data.training = { revbifpnMnist: m, unetSynthetic: u };
    targets.push(target('RevBiFPN on MNIST: reversible vs stored loss curve (default exact arithmetic), largest relative gap over the first 50 steps', m.curveGapFirst50 as number, 'max', 1e-3));
    targets.push(target('3-D U-Net on synthetic volumes: reversible vs stored loss curve (default exact arithmetic), largest relative gap over the first 50 steps', u.curveGapFirst50 as number, 'max', 1e-3));
  }

  data.seconds = round((performance.now() - started) / 1000, 1);
  writeResults('revsilo', data, targets);
}
