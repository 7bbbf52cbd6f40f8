import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { selectBackend, type TensorData } from '@tapfit/core';
import { lineChartSvg, writeSvg } from '../lib/chart';
import { abSensitivity, AB_RHOS, DELAYS, stabilityTable, type QuadraticCase, type StabilityRow } from '../lib/delay-stability-table';
import { runDelayed, trainingMethodName, type TrainingMethod } from '../lib/delay-training';
import { fashionSplits } from '../lib/fashion-mnist';
import { resultsDir, round, target, writeResults, type Target } from '../results';

/**
 * Gradient delay: Adaptive Braking (plugin-brakes), Spike Compensation and Linear Weight
 * Prediction (plugin-pipeline) side by side (docs/techniques.md §4, §5.3-§5.4).
 *
 * Part 1, stability (float64, no training; lib/delay-stability.ts): the largest stable
 * lr·h_max on the delayed quadratic for D in {0, 1, 2, 4, 8, 16, 32, 64} and momentum,
 * AB (rho 0.5 / 1 / 1.5 / 2), SC, LWP (velocity and weight-delta form), SC + LWP, on one
 * curvature (1-D) and on 16 curvatures spread log-uniformly over 100x (AB's cosine is
 * then not ±1); spectral radius for the linear methods, simulation for AB. At D = 32, AB
 * also on other quadratics (64 dimensions, a 1000x spread, 4 tensors with one cosine
 * each). Charts: bench/results/delay-stability.svg (16-D) and delay-stability-1d.svg.
 *
 * Part 2, training. The protocol, fixed before the first full run:
 * - data: Fashion-MNIST (`fashion-mnist` package: 70,000 images, its two empty entries
 *   dropped), one permutation (seed 0) split into 10,000 test, 5,000 held-out and
 *   55,000 training images;
 *   every choice below is made on the held-out images, the test images only score the
 *   chosen settings;
 * - model: MLP 784-128-128-10, ReLU, He-normal kernels and zero biases from the run's
 *   seed; softmax cross-entropy;
 * - SGD with momentum 0.9 (PyTorch form), batch 32, 5,000 updates (2.9 epochs; a delay
 *   of 32 is 0.64 % of the run); learning rate: linear warm-up from 0 over 250 updates,
 *   then cosine decay to 0 at update 5,000, counted in applied updates, the same for
 *   every method and delay;
 * - delays D in {0, 8, 32}, on the delay model of docs/techniques.md §4.3 (update k
 *   applies batch k's gradient computed on the weights after update max(0, k - D);
 *   lib/delay-training.ts): momentum and AB through plugin-brakes (delayedGradients;
 *   its first D batches only fill the queue, so it reads D more batches for the same
 *   5,000 updates), SC, LWP (velocity form) and SC + LWP through plugin-pipeline's
 *   one-stage trainer (stages 1, extraDelay D, weightStashing); the two routes give the
 *   same weights for momentum (bench/test/delay-routes.test.ts). At D = 0, SC, LWP and
 *   SC + LWP are momentum exactly (tested), so their D = 0 figures are momentum's;
 * - learning rate: for each (method, D) its own, from the grid 10^(-4 + k/2),
 *   k = 0..7 (1e-4 .. 0.316), scanned from the largest down with seed 1: a run whose
 *   training loss (read every 100 batches) is non-finite or above 100 stops as
 *   diverged; the scan stops after two completed rates in a row that are worse than
 *   the best so far; the chosen rate has the best held-out accuracy (ties: the larger);
 * - AB: rho in {0.5, 1, 1.5, 2} with the per-tensor cosine, each with its own learning
 *   rate scan at D = 32; the rho with the best held-out accuracy; then granularity
 *   'global' at that rho (its own scan) against 'tensor': the better one on held-out
 *   data. That (rho, granularity) is AB at every D; its learning rate is scanned at each D;
 * - seeds 1 and 2 (initialisation and data order): seed 1's run at the chosen settings
 *   is the scan's own run; seed 2 runs once at the chosen settings (if it diverges it
 *   counts with the accuracy its weights give). Reported: test accuracy per seed, their
 *   mean and spread (max - min).
 * Chart: bench/results/delay-accuracy.svg (mean test accuracy against D, per method).
 *
 * Targets: stability, at D = 32 the best AB setting's largest stable rate >= 10x
 * momentum's on the 16-D quadratic; training at D = 32 (each method at its chosen
 * rate), the best of AB / SC / LWP / SC + LWP within 2 percentage points of momentum at
 * D = 0, and AB better than momentum by more than the seed spread (the larger of the
 * two methods' spreads).
 *
 * `npm run bench -- delay [--quick] [--skip stability|training]` (~50 min on 2 shared
 * cores; --quick: a smoke run of every part on small data, not the protocol).
 */

const MOMENTUM = 0.9;
const DIMS = 16;
const SPREAD = 0.01;
const TRAIN_DELAYS = [0, 8, 32];
const SEEDS = [1, 2];
const LR_GRID = Array.from({ length: 8 }, (_, k) => round(10 ** (-4 + k / 2), 6));
/** Above this training loss (chance is ln 10 = 2.3) a run counts as diverged. */
const DIVERGED_LOSS = 100;

interface Settings {
  quick: boolean;
  skip: string[];
  sizes: { test: number; heldOut: number; train: number };
  updates: number;
  warmup: number;
  batch: number;
  lrGrid: number[];
  rhoGrid: number[];
  seeds: number[];
  stabilityDelays: number[];
}

function settings(args: string[]): Settings {
  const quick = args.includes('--quick');
  const i = args.indexOf('--skip');
  const skip = i >= 0 ? (args[i + 1] ?? '').split(',') : [];
  return quick
    ? {
        quick,
        skip,
        sizes: { test: 1000, heldOut: 1000, train: 4000 },
        updates: 300,
        warmup: 15,
        batch: 32,
        lrGrid: [0.001, 0.01, 0.1],
        rhoGrid: [1, 2],
        seeds: SEEDS,
        stabilityDelays: [0, 8, 32],
      }
    : {
        quick,
        skip,
        sizes: { test: 10_000, heldOut: 5_000, train: 55_000 },
        updates: 5_000,
        warmup: 250,
        batch: 32,
        lrGrid: LR_GRID,
        rhoGrid: AB_RHOS,
        seeds: SEEDS,
        stabilityDelays: DELAYS,
      };
}

const load = () => os.loadavg().map((x) => round(x, 2));

// ---------------------------------------------------------------- part 1: stability

async function stabilityPart(s: Settings) {
  const t0 = performance.now();
  const rows = stabilityTable({ momentum: MOMENTUM, dims: DIMS, spread: SPREAD, delays: s.stabilityDelays });
  const cases: QuadraticCase[] = s.quick
    ? [{ dims: DIMS, spread: 0.001, tensors: 1 }]
    : [
        { dims: DIMS, spread: 0.001, tensors: 1 },
        { dims: 64, spread: SPREAD, tensors: 1 },
        { dims: DIMS, spread: SPREAD, tensors: 4 },
      ];
  const sensitivity = s.stabilityDelays.includes(32) ? abSensitivity({ momentum: MOMENTUM, delay: 32, cases }) : [];
  const seconds = (performance.now() - t0) / 1000;

  for (const dims of [1, DIMS]) {
    console.log(`\nlargest stable lr·h_max, ${dims === 1 ? '1-D quadratic' : `${DIMS}-D quadratic, curvatures spread over ${1 / SPREAD}x`} (m = ${MOMENTUM}); [AB: smallest stable]`);
    const table: Record<string, Record<string, string>> = {};
    for (const r of rows.filter((x) => x.dims === dims)) {
      (table[r.method] ??= {})[`D=${r.delay}`] = `${r.rate.toPrecision(3)}${r.lowest ? ` [${r.lowest.toPrecision(2)}]` : ''}`;
    }
    console.table(table);
  }
  if (sensitivity.length) console.table(sensitivity.map((r) => ({ ...r, rate: r.rate.toPrecision(3), lowest: r.lowest.toPrecision(2), factor: round(r.factor, 2) })));

  const chart = async (dims: number, file: string) => {
    const data = rows.filter((r) => r.dims === dims && Number.isFinite(r.rate) && r.rate > 0).map((r) => ({ method: r.method, delay: r.delay, rate: r.rate }));
    const svg = await lineChartSvg({
      title: 'Largest stable learning rate under gradient delay',
      subtitle: `${dims === 1 ? 'delayed 1-D quadratic' : `delayed ${dims}-D quadratic, curvatures spread over ${1 / SPREAD}x`}, momentum ${MOMENTUM}, float64`,
      x: { field: 'delay', title: 'delay D (updates)', scale: 'symlog', ticks: s.stabilityDelays },
      y: { field: 'rate', title: 'largest stable lr·h_max', scale: 'log' },
      series: 'method',
      data,
    });
    return path.relative(process.cwd(), writeSvg(path.join(resultsDir, file), svg));
  };
  const charts = { nDim: await chart(DIMS, 'delay-stability.svg'), oneDim: await chart(1, 'delay-stability-1d.svg') };

  const at32 = rows.filter((r) => r.delay === 32);
  const factorsAtD32 = (dims: number) => Object.fromEntries(at32.filter((r) => r.dims === dims).map((r) => [r.method, round(r.factor, 3)]));
  return {
    about:
      'largest lr·h_max at which the delayed quadratic L = sum h_i w_i^2 / 2 converges, float64, momentum 0.9 (PyTorch form); gradient at step t computed on the (forward) weights of step t - D; ' +
      'linear methods by spectral radius < 1, AB by simulation (the sharpest direction below 1e-3 of its start, bounded); lowest: the smallest grid rate (1e-4 .. 10, 10 a decade) that converges, 0 where every small rate does',
    settings: { momentum: MOMENTUM, dims: DIMS, spread: SPREAD, delays: s.stabilityDelays },
    seconds: round(seconds, 1),
    rows: rows.map(roundRow),
    factorsAtD32: { oneDim: factorsAtD32(1), nDim: factorsAtD32(DIMS) },
    abSensitivityAtD32: sensitivity.map(roundRow),
    charts,
  };
}

function roundRow<T extends { rate: number; lowest: number; factor: number }>(r: T): T {
  return { ...r, rate: Number(r.rate.toPrecision(4)), lowest: Number(r.lowest.toPrecision(3)), factor: round(r.factor, 3) };
}

// ---------------------------------------------------------------- part 2: training

/** MLP 784-128-128-10, ReLU, He-normal kernels and zero biases, seeded. */
function mlp(seed: number): tf.Sequential {
  const init = (k: number) => tf.initializers.heNormal({ seed: seed * 100 + k });
  return tf.sequential({
    name: 'mlp',
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [784], units: 128, activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.dense({ name: 'fc2', units: 128, activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.dense({ name: 'out', units: 10, kernelInitializer: init(3) }),
    ],
  });
}

function accuracyOf(model: tf.LayersModel, data: TensorData): number {
  return tf.tidy(() => tf.mean(tf.cast(tf.equal(tf.argMax(model.predict(data.x) as tf.Tensor, -1), data.y), 'float32')).dataSync()[0]);
}

interface Data {
  train: TensorData;
  heldOut: TensorData;
  test: TensorData;
}

interface ScanRun {
  method: string;
  delay: number;
  lr: number;
  heldOutAccuracy: number;
  diverged: boolean;
  updates: number;
  lastTrainLoss: number;
  seconds: number;
  msPerBatch: number;
}

interface Choice {
  method: string;
  spec: TrainingMethod;
  delay: number;
  lr: number;
  heldOutAccuracy: number;
  /** The chosen rate is the grid's largest or smallest. */
  atGridEdge: boolean;
  /** seed 1's trained model, kept until its test accuracy is read. */
  model?: tf.LayersModel;
}

/** One training run at seed `seed`; returns the trained model and the run's figures. */
async function trainOnce(s: Settings, data: Data, spec: TrainingMethod, delay: number, lr: number, seed: number) {
  const model = mlp(seed);
  const r = await runDelayed({ model, method: spec, delay, lr, momentum: MOMENTUM, warmup: s.warmup, updates: s.updates, batchSize: s.batch, seed, data: data.train, maxLoss: DIVERGED_LOSS });
  r.dispose();
  return { model, diverged: r.diverged, updates: r.updates, lastLoss: r.lastLoss, seconds: r.seconds, msPerBatch: (r.seconds * 1000) / r.batches };
}

/**
 * The protocol's learning-rate scan for one (method, D) at seed 1: from the largest rate
 * down; stops after two completed rates in a row worse than the best so far.
 */
async function scanLr(s: Settings, data: Data, spec: TrainingMethod, delay: number, log: ScanRun[]): Promise<Choice> {
  const method = trainingMethodName(spec);
  const grid = [...s.lrGrid].sort((a, b) => b - a);
  let best: Choice | undefined;
  let worse = 0;
  for (const lr of grid) {
    const run = await trainOnce(s, data, spec, delay, lr, s.seeds[0]);
    const heldOutAccuracy = run.diverged ? NaN : accuracyOf(run.model, data.heldOut);
    log.push({ method, delay, lr, heldOutAccuracy: round(heldOutAccuracy), diverged: run.diverged, updates: run.updates, lastTrainLoss: round(run.lastLoss), seconds: round(run.seconds, 1), msPerBatch: round(run.msPerBatch, 2) });
    console.log(`  scan ${method}, D=${delay}, lr ${lr}: ${run.diverged ? `diverged after ${run.updates} updates` : `held-out accuracy ${round(heldOutAccuracy)}`} (${round(run.seconds, 1)} s, ${round(run.msPerBatch, 2)} ms/batch, load ${load()[0]})`);
    if (!run.diverged && (!best || heldOutAccuracy > best.heldOutAccuracy)) {
      best?.model?.dispose();
      best = { method, spec, delay, lr, heldOutAccuracy, atGridEdge: lr === grid[0] || lr === grid[grid.length - 1], model: run.model };
      worse = 0;
    } else {
      run.model.dispose();
      if (!run.diverged && ++worse === 2) break;
    }
  }
  // Every rate diverged: report the smallest, which is what a user would be left with.
  return best ?? { method, spec, delay, lr: grid[grid.length - 1], heldOutAccuracy: NaN, atGridEdge: true };
}

interface FinalRun {
  method: string;
  delay: number;
  seed: number;
  lr: number;
  testAccuracy: number;
  heldOutAccuracy: number;
  diverged: boolean;
  seconds: number;
}

async function trainingPart(s: Settings) {
  const t0 = performance.now();
  const loadAtStart = load();
  const [test, heldOut, train] = fashionSplits([s.sizes.test, s.sizes.heldOut, s.sizes.train], 0);
  const data: Data = { train, heldOut, test };
  const scans: ScanRun[] = [];
  const choices: Choice[] = [];
  const scan = async (spec: TrainingMethod, delay: number) => {
    const c = await scanLr(s, data, spec, delay, scans);
    console.log(`  -> ${c.method}, D=${delay}: lr ${c.lr} (held-out ${round(c.heldOutAccuracy)})`);
    return c;
  };
  const momentumLike: TrainingMethod[] = [{ kind: 'momentum' }, { kind: 'sc' }, { kind: 'lwp' }, { kind: 'sc+lwp' }];

  // D = 32 first: it fixes AB's rho and granularity.
  const abCandidates: Choice[] = [];
  for (const rho of s.rhoGrid) abCandidates.push(await scan({ kind: 'ab', rho }, 32));
  const bestRho = pickBest(abCandidates);
  const global = await scan({ kind: 'ab', rho: (bestRho.spec as { rho: number }).rho, granularity: 'global' }, 32);
  const ab = pickBest([bestRho, global]);
  for (const c of [...abCandidates, global]) if (c !== ab) c.model?.dispose();
  const abSpec = ab.spec;
  console.log(`  AB setting (held-out, D = 32): ${ab.method}`);
  choices.push(ab);
  for (const spec of momentumLike) choices.push(await scan(spec, 32));
  for (const spec of [...momentumLike, abSpec]) choices.push(await scan(spec, 8));
  for (const spec of [momentumLike[0], abSpec]) choices.push(await scan(spec, 0));

  // Test accuracy: seed 1 from the scan's own run, seed 2 trained once at the chosen settings.
  const finals: FinalRun[] = [];
  for (const c of choices) {
    for (const seed of s.seeds) {
      if (seed === s.seeds[0]) {
        const testAccuracy = c.model ? accuracyOf(c.model, test) : NaN;
        finals.push({ method: c.method, delay: c.delay, seed, lr: c.lr, testAccuracy: round(testAccuracy), heldOutAccuracy: round(c.heldOutAccuracy), diverged: !c.model, seconds: NaN });
        c.model?.dispose();
        delete c.model;
        continue;
      }
      // A run that diverges here still counts, with whatever accuracy its weights give (about chance).
      const run = await trainOnce(s, data, c.spec, c.delay, c.lr, seed);
      const testAccuracy = accuracyOf(run.model, test);
      const heldOutAccuracy = accuracyOf(run.model, heldOut);
      run.model.dispose();
      finals.push({ method: c.method, delay: c.delay, seed, lr: c.lr, testAccuracy: round(testAccuracy), heldOutAccuracy: round(heldOutAccuracy), diverged: run.diverged, seconds: round(run.seconds, 1) });
      console.log(`  seed ${seed}: ${c.method}, D=${c.delay}, lr ${c.lr}: test accuracy ${round(testAccuracy)}`);
    }
  }
  tf.dispose([train.x, train.y, heldOut.x, heldOut.y, test.x, test.y]);

  // D = 0: SC, LWP and SC + LWP are momentum exactly (bench/test/delay-routes.test.ts).
  const methods = ['momentum', ab.method, 'SC', 'LWP', 'SC + LWP'];
  const figures = (method: string, delay: number) => {
    const source = delay === 0 && method !== ab.method ? 'momentum' : method;
    const runs = finals.filter((f) => f.method === source && f.delay === delay);
    const accs = runs.map((f) => f.testAccuracy);
    const ok = accs.every(Number.isFinite) && accs.length > 0;
    return {
      method,
      delay,
      lr: runs[0]?.lr,
      perSeed: accs,
      mean: ok ? round(accs.reduce((a, b) => a + b, 0) / accs.length) : NaN,
      spread: ok ? round(Math.max(...accs) - Math.min(...accs)) : NaN,
      ...(source !== method && { sameAs: source }),
    };
  };
  const summary = methods.flatMap((m) => TRAIN_DELAYS.map((d) => figures(m, d)));
  console.table(summary.map((r) => ({ method: r.method, D: r.delay, lr: r.lr, mean: r.mean, spread: r.spread, seeds: r.perSeed.join(' / ') })));

  const svg = await lineChartSvg({
    title: 'Test accuracy under gradient delay',
    subtitle: `Fashion-MNIST, MLP, ${s.updates} updates; each method and delay at its own learning rate`,
    x: { field: 'delay', title: 'delay D (updates)', ticks: TRAIN_DELAYS },
    y: { field: 'accuracy', title: `test accuracy (mean of ${s.seeds.length} seeds)` },
    series: 'method',
    data: summary.filter((r) => Number.isFinite(r.mean)).map((r) => ({ method: r.method, delay: r.delay, accuracy: r.mean })),
  });
  const chart = path.relative(process.cwd(), writeSvg(path.join(resultsDir, 'delay-accuracy.svg'), svg));
  return {
    protocol: {
      data: `Fashion-MNIST (fashion-mnist package), permutation seed 0: ${s.sizes.test} test, ${s.sizes.heldOut} held-out, ${s.sizes.train} training images`,
      model: 'MLP 784-128-128-10, ReLU, He-normal kernels, zero biases (seeded)',
      optimizer: `SGD momentum ${MOMENTUM} (PyTorch form), batch ${s.batch}, ${s.updates} updates, lr: linear warm-up from 0 over ${s.warmup} updates then cosine decay to 0`,
      delays: TRAIN_DELAYS,
      lrGrid: s.lrGrid,
      rhoGrid: s.rhoGrid,
      seeds: s.seeds,
      selection:
        'per (method, D), seed 1: rates scanned from the largest down, diverged runs (training loss non-finite or > 100) stopped, scan stopped after two completed rates in a row worse than the best; best held-out accuracy wins. AB: rho (per tensor) chosen at D = 32, then global vs tensor at that rho; used at every D.',
      routes: 'momentum and AB: plugin-brakes delayedGradients (+ adaptiveBraking); SC, LWP (velocity), SC + LWP: plugin-pipeline stages 1, extraDelay D, weightStashing',
    },
    abSetting: ab.method,
    chosen: choices.map((c) => ({ method: c.method, delay: c.delay, lr: c.lr, heldOutAccuracy: round(c.heldOutAccuracy), atGridEdge: c.atGridEdge })),
    scans,
    finals,
    summary,
    chart,
    load: { atStart: loadAtStart, atEnd: load() },
    minutes: round((performance.now() - t0) / 60_000, 1),
  };
}

/** The choice with the best held-out accuracy (the first on ties). */
function pickBest(choices: Choice[]): Choice {
  return choices.reduce((a, b) => (b.heldOutAccuracy > a.heldOutAccuracy || !Number.isFinite(a.heldOutAccuracy) ? b : a));
}

// ---------------------------------------------------------------- run

export async function run(args: string[]): Promise<void> {
  const s = settings(args);
  const backend = await selectBackend('wasm');
  const results: Record<string, unknown> = { backend: backend.name, quick: s.quick, loadAtStart: load() };
  const targets: Target[] = [];

  if (!s.skip.includes('stability')) {
    const st = await stabilityPart(s);
    results.stability = st;
    const ab32 = st.rows.filter((r: StabilityRow) => r.dims === DIMS && r.delay === 32 && r.method.startsWith('AB'));
    if (ab32.length) {
      const best = ab32.reduce((a, b) => (b.factor > a.factor ? b : a));
      targets.push(target(`stability, ${DIMS}-D quadratic, D = 32: largest stable lr·h of the best AB setting (${best.method}) / momentum's`, best.factor, 'min', 10));
    }
  }

  if (!s.skip.includes('training')) {
    const tr = await trainingPart(s);
    results.training = tr;
    const at = (method: string, delay: number) => tr.summary.find((r) => r.method === method && r.delay === delay)!;
    const reference = at('momentum', 0);
    const remedies = [tr.abSetting, 'SC', 'LWP', 'SC + LWP'].map((m) => at(m, 32));
    const best = remedies.reduce((a, b) => (b.mean > a.mean || !Number.isFinite(a.mean) ? b : a));
    targets.push(target(`training, D = 32: momentum at D = 0 minus the best remedy at D = 32 (${best.method}), mean test accuracy, percentage points`, (reference.mean - best.mean) * 100, 'max', 2));
    const abAt32 = at(tr.abSetting, 32);
    const momentumAt32 = at('momentum', 32);
    const spread = Math.max(abAt32.spread, momentumAt32.spread);
    // "More than the spread": > 0, i.e. at least 0.005 pp, the resolution of a two-seed mean on 10,000 test images.
    targets.push(target(`training, D = 32: (AB - momentum) mean test accuracy minus the larger seed spread, percentage points (must exceed 0)`, (abAt32.mean - momentumAt32.mean - spread) * 100, 'min', 0.005));
  }
  results.loadAtEnd = load();
  writeResults('delay', results, targets);
}
