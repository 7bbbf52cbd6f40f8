/**
 * Backends and training speed side by side, in one run:
 *
 * 1. cpu, stock wasm (shim uninstalled) and shimmed wasm in one process (1 thread),
 *    interleaved round by round: matMul GFLOP/s (256..2048), conv2d forward+backward,
 *    the shim's composite kernels against the kernels they replace, an MLP and a
 *    tfjs-layers CNN training step.
 * 2. tapfit's Trainer on the three models (MLP 784-512-512-10 b128, CNN
 *    conv16-pool-conv32-pool-dense128 b64, MLP 784-2048-2048-10 b256) in child processes
 *    with 1 and 2 wasm threads (the count is fixed per process), alternated round by
 *    round; each child also measures matMul 1024 (the backend's product rate) and runs
 *    every model with the wasm fast kernels on and off (`installWasmFastKernels`).
 * 3. PyTorch on the same models, 1 and 2 threads, between the rounds, when a Python
 *    with torch is found (bench/python/torch_peer.py; skipped with the reason otherwise).
 *
 *   npm run bench -- backend [--quick] [--rounds=4] [--no-threads] [--no-peer]
 *
 * Ratios are paired: computed within a round (a 2-thread child against the 1-thread
 * child next to it, fast against plain inside one child), then the median over rounds,
 * with the spread (min-max) in the JSON. cpu is ~40x slower, so it gets fewer
 * repetitions and skips matMul 2048. Every timing forces completion with dataSync().
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { installWasmShim, selectBackend, uninstallWasmShim } from '@tapfit/core';
import { findPeer, runPeerRound, type PeerRound } from '../lib/peer';
import { layersCnnStep, rawMlpStep } from '../lib/raw-steps';
import { STEP_MODELS } from '../lib/step-models';
import { measureTrainingRates, type TrainingRates } from '../lib/training-rate';
import { median, round, target, writeResults, type Target } from '../results';

type Variant = 'cpu' | 'wasm-stock' | 'wasm-shim';
const VARIANTS: Variant[] = ['cpu', 'wasm-stock', 'wasm-shim'];

async function use(variant: Variant): Promise<void> {
  await tf.setBackend(variant === 'cpu' ? 'cpu' : 'wasm');
  if (variant === 'wasm-stock') uninstallWasmShim();
  if (variant === 'wasm-shim') installWasmShim();
}

/**
 * Milliseconds of one call; f must force completion (dataSync) itself. Steps return
 * nothing from tf.tidy: tidy walks a returned typed array element by element looking
 * for tensors, which costs seconds for a 1M-element result.
 */
async function time(f: () => unknown): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

interface Workload {
  /** Built while the variant's backend is active, so its tensors live there. */
  setup(): { step: () => unknown; dispose: () => void };
  reps: Partial<Record<Variant, number>>;
  warmup?: Partial<Record<Variant, number>>;
}

type Timing = { ms: number; reps: number; samples: number[] } | { error: string };

/**
 * Rounds over the variants (so drift hits all alike); each variant gets its own
 * number of timed repetitions after its warm-up. An error (a missing kernel on
 * stock wasm) is recorded instead of a time.
 */
async function interleave(w: Workload, variants: Variant[] = VARIANTS): Promise<Record<string, Timing>> {
  const state = new Map<Variant, { step: () => unknown; dispose: () => void; samples: number[] } | { error: string }>();
  for (const v of variants) {
    if (!w.reps[v]) continue;
    await use(v);
    try {
      const s = w.setup();
      for (let i = 0; i < (w.warmup?.[v] ?? 1); i++) await s.step();
      state.set(v, { ...s, samples: [] });
    } catch (err) {
      state.set(v, { error: (err as Error).message.split('\n')[0] });
    }
  }
  const rounds = Math.max(...variants.map((v) => w.reps[v] ?? 0));
  for (let r = 0; r < rounds; r++) {
    for (const v of variants) {
      const s = state.get(v);
      if (!s || 'error' in s || r >= (w.reps[v] ?? 0)) continue;
      await use(v);
      s.samples.push(await time(s.step));
    }
  }
  const out: Record<string, Timing> = {};
  for (const [v, s] of state) {
    if ('error' in s) out[v] = s;
    else {
      await use(v);
      s.dispose();
      out[v] = { ms: round(median(s.samples), 3), reps: s.samples.length, samples: s.samples.map((x) => round(x, 2)) };
    }
  }
  await use('wasm-shim');
  return out;
}

const ms = (t: Timing | undefined): number => (t && 'ms' in t ? t.ms : Number.NaN);

function matMul(n: number, reps: Workload['reps']): Workload {
  return {
    reps,
    setup() {
      const a = tf.randomNormal([n, n]);
      const b = tf.randomNormal([n, n]);
      return { step: () => tf.tidy(() => void tf.matMul(a, b).dataSync()), dispose: () => tf.dispose([a, b]) };
    },
  };
}

/** x[32,32,32,16] conv [3,3,16,32] 'same': forward, dx and dW. */
function convForwardBackward(reps: Workload['reps']): Workload {
  return {
    reps,
    warmup: { cpu: 0 },
    setup() {
      const x = tf.randomNormal([32, 32, 32, 16]);
      const f = tf.randomNormal([3, 3, 16, 32]);
      const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, 'same').square().sum());
      return { step: () => tf.tidy(() => grads([x, f]).forEach((g) => g.dataSync())), dispose: () => tf.dispose([x, f]) };
    },
  };
}

/** One kernel on fixed inputs (the composites against the kernels they replace). */
function kernel(name: string, make: () => tf.NamedTensorMap, attrs: object, reps: Workload['reps']): Workload {
  return {
    reps,
    setup() {
      const inputs = make();
      return {
        step: () => tf.tidy(() => void (tf.engine().runKernel(name, inputs, attrs as tf.NamedAttrMap) as tf.Tensor).dataSync()),
        dispose: () => tf.dispose(Object.values(inputs)),
      };
    },
  };
}

/** MLP 784-512-512-10, batch 128, softmax cross-entropy, plain SGD. */
function mlp(reps: Workload['reps']): Workload {
  return { reps, warmup: { cpu: 1, 'wasm-stock': 2, 'wasm-shim': 3 }, setup: () => rawMlpStep([784, 512, 512, 10], 128) };
}

/** tfjs-layers conv16-pool-conv32-pool-dense128-dense10 on 28x28x1, batch 64, SGD. */
function cnn(reps: Workload['reps']): Workload {
  return { reps, warmup: { cpu: 1, 'wasm-shim': 3 }, setup: () => layersCnnStep(64) };
}

/** Child-process entry: one training-rate measurement with `threads` wasm threads; prints one JSON line. */
async function trainingChild(threads: number, quick: boolean): Promise<void> {
  console.log(`RATES ${JSON.stringify(await measureTrainingRates(threads, quick ? 0.5 : 1))}`);
}

function runTrainingChild(threads: number, quick: boolean): Promise<TrainingRates> {
  const runner = path.resolve(__dirname, '..', 'run.js');
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [runner, 'backend', `--threads-child=${threads}`, ...(quick ? ['--quick'] : [])], { timeout: 600_000 }, (err, stdout, stderr) => {
      const line = stdout.split('\n').find((l) => l.startsWith('RATES '));
      if (err || !line) return reject(new Error(`training child (${threads} threads) failed: ${err?.message ?? ''}\n${stderr}`));
      resolve(JSON.parse(line.slice(6)) as TrainingRates);
    });
  });
}

export async function run(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const child = args.find((a) => a.startsWith('--threads-child='));
  if (child) return trainingChild(Number(child.split('=')[1]), quick);

  const started = performance.now();
  await selectBackend('wasm', { threads: 1 });
  const few = (cpu: number, wasm: number): Workload['reps'] => ({ cpu, 'wasm-stock': wasm, 'wasm-shim': wasm });
  const r = quick ? 0.5 : 1;
  const n = (k: number) => Math.max(1, Math.round(k * r));

  const matMulTimes: Record<string, Record<string, Timing>> = {};
  for (const size of [256, 512, 1024, 2048]) {
    const cpuReps = size >= 2048 ? 0 : size >= 1024 ? 2 : 3;
    matMulTimes[size] = await interleave(matMul(size, few(cpuReps, n(size >= 1024 ? 7 : 15))));
    console.log(`matMul ${size}:`, summarize(matMulTimes[size]));
  }
  const gflops = (size: number, v: Variant) => round((2 * size ** 3) / ms(matMulTimes[size][v]) / 1e6, 2);

  const conv = await interleave(convForwardBackward(few(1, n(7))));
  console.log('conv fwd+bwd:', summarize(conv));

  const composites = {
    'BatchMatMul [128,784]^T x [128,512] (transposeA)': await interleave(kernel('BatchMatMul', () => ({ a: tf.randomNormal([128, 784]), b: tf.randomNormal([128, 512]) }), { transposeA: true, transposeB: false }, few(3, n(9)))),
    'BatchMatMul [128,512] x [784,512]^T (transposeB)': await interleave(kernel('BatchMatMul', () => ({ a: tf.randomNormal([128, 512]), b: tf.randomNormal([784, 512]) }), { transposeA: false, transposeB: true }, few(3, n(9)))),
    'Conv2DBackpropInput dy[32,32,32,32], W[3,3,16,32]': await interleave(kernel('Conv2DBackpropInput', () => ({ dy: tf.randomNormal([32, 32, 32, 32]), filter: tf.randomNormal([3, 3, 16, 32]) }), { strides: 1, pad: 'same', dataFormat: 'NHWC', inputShape: [32, 32, 32, 16] }, few(1, n(7)))),
    'Conv2DBackpropFilter x[32,32,32,16], dy[32,32,32,32]': await interleave(kernel('Conv2DBackpropFilter', () => ({ x: tf.randomNormal([32, 32, 32, 16]), dy: tf.randomNormal([32, 32, 32, 32]) }), { strides: 1, pad: 'same', dataFormat: 'NHWC', filterShape: [3, 3, 16, 32] }, few(1, n(7)))),
    'DepthwiseConv2dNativeBackpropInput dy[32,32,32,32], W[3,3,32,1]': await interleave(kernel('DepthwiseConv2dNativeBackpropInput', () => ({ dy: tf.randomNormal([32, 32, 32, 32]), filter: tf.randomNormal([3, 3, 32, 1]) }), { strides: 1, pad: 'same', dilations: 1, inputShape: [32, 32, 32, 32] }, few(1, n(7)))),
    'DepthwiseConv2dNativeBackpropFilter x[32,32,32,32], dy[32,32,32,32]': await interleave(kernel('DepthwiseConv2dNativeBackpropFilter', () => ({ x: tf.randomNormal([32, 32, 32, 32]), dy: tf.randomNormal([32, 32, 32, 32]) }), { strides: 1, pad: 'same', dilations: 1, filterShape: [3, 3, 32, 1] }, few(1, n(7)))),
    'MaxPoolGrad 2x2/2 x[64,28,28,16]': await interleave(kernel('MaxPoolGrad', () => {
      const input = tf.relu(tf.randomNormal([64, 28, 28, 16]));
      const output = tf.maxPool(input as tf.Tensor4D, 2, 2, 'valid');
      return { dy: tf.randomNormal(output.shape), input, output };
    }, { filterSize: 2, strides: 2, pad: 'valid' }, few(3, n(9)))),
  };
  for (const [name, t] of Object.entries(composites)) console.log(`${name}:`, summarize(t));

  const mlpTimes = await interleave(mlp(few(3, n(15))));
  console.log('MLP step:', summarize(mlpTimes));
  const cnnTimes = await interleave(cnn({ cpu: 2, 'wasm-stock': 1, 'wasm-shim': n(9) }));
  console.log('CNN step:', summarize(cnnTimes));

  // 2 and 3: tapfit's Trainer with 1 and 2 threads in child processes, PyTorch between rounds.
  const rounds = Number(args.find((a) => a.startsWith('--rounds='))?.split('=')[1] ?? (quick ? 2 : 4));
  const peer = args.includes('--no-peer') ? { skipped: '--no-peer' } : findPeer();
  if ('skipped' in peer) console.log(`PyTorch peer skipped: ${peer.skipped}`);
  else console.log(`PyTorch peer: torch ${peer.torch} (${peer.python}), BLAS ${peer.blas.join(', ') || 'unknown'}`);
  const training: TrainingRates[][] = [];
  const twins: TrainingRates[][] = [];
  const peerRounds: PeerRound[] = [];
  if (!args.includes('--no-threads')) {
    for (let round = 0; round < rounds; round++) {
      const pair: TrainingRates[] = [];
      for (const t of round % 2 === 0 ? [1, 2] : [2, 1]) pair.push(await runTrainingChild(t, quick));
      training.push(pair.sort((a, b) => a.threads - b.threads));
      console.log(`round ${round}:`, JSON.stringify(training[round].map((x) => ({ threads: x.threads, load: x.loadAtStart, matMul1024: x.matMul1024GFlops, ...Object.fromEntries(Object.entries(x.models).map(([k, v]) => [k, v.fast])) }))));
      // The ceiling for any 2-thread scheme on this host: two independent 1-thread runs at once.
      if (!args.includes('--no-ceiling')) {
        twins.push(await Promise.all([runTrainingChild(1, quick), runTrainingChild(1, quick)]));
        console.log(`round ${round}, two 1-thread children at once:`, JSON.stringify(twins[round].map((x) => ({ matMul1024: x.matMul1024GFlops, ...Object.fromEntries(Object.entries(x.models).map(([k, v]) => [k, v.fast])) }))));
      }
      if (!('skipped' in peer)) peerRounds.push(...(await runPeerRound(peer, round, round % 2 === 0 ? [1, 2] : [2, 1], quick ? 0.5 : 1)));
    }
  }

  const steps = (t: Timing | undefined) => round(1000 / ms(t), 3);
  const mlpShim = steps(mlpTimes['wasm-shim']);
  const cnnShim = steps(cnnTimes['wasm-shim']);
  const summary = summarizeTraining(training, twins, peerRounds);
  printTraining(summary);
  const s = (model: string) => summary.models[model];
  const targets: Target[] = [
    target('MLP steps/s, shimmed wasm / stock wasm', round(mlpShim / steps(mlpTimes['wasm-stock']), 2), 'min', 7),
    target('MLP steps/s, shimmed wasm / cpu', round(mlpShim / steps(mlpTimes.cpu), 2), 'min', 15),
    target('CNN steps/s, shimmed wasm / cpu', round(cnnShim / steps(cnnTimes.cpu), 2), 'min', 50),
  ];
  if (training.length) {
    targets.push(
      target('MLP 784-2048-2048-10: 2 threads / 1 thread steps/s (2 free cores; paired rounds, median)', s('mlp-big').twoThreadSpeedup.median, 'min', 1.6),
      target('CNN: 2 threads / 1 thread steps/s (2 free cores; paired rounds, median)', s('cnn').twoThreadSpeedup.median, 'min', 1.6),
      target('MLP 784-2048-2048-10: training GFLOP/s / matMul 1024 GFLOP/s, 1 thread', s('mlp-big').ofMatMul[1].median, 'min', 0.85),
      target('MLP 784-2048-2048-10: training GFLOP/s / matMul 1024 GFLOP/s, 2 threads', s('mlp-big').ofMatMul[2].median, 'min', 0.85),
      target('MLP 784-512-512-10: steps/s with the fast kernels / without, 1 thread', s('mlp').fastGain.median, 'min', 1.3),
      target('CNN: steps/s with the fast kernels / without, 1 thread', s('cnn').fastGain.median, 'min', 1.3),
    );
  }
  writeResults('backend', {
    command: `npm run bench -- backend${args.length ? ` ${args.join(' ')}` : ''}`,
    notes: [
      'part 1: cpu, wasm-stock (shim uninstalled) and wasm-shim (1 thread) run interleaved in one process; times are medians (ms); cpu matMul 2048 skipped (about 17 s per product), cpu gets 1-3 repetitions; wasm-stock cannot train convolutions (Conv2DBackpropFilter missing): its conv and CNN entries hold the error',
      'part 2: tapfit Trainer steps/s (SGD, fixed batch) in child processes with 1 and 2 wasm threads, alternated; each child: matMul 1024 on the same operands (the backend product rate) and every model with the fast kernels on and off (order on, off, off, on; medians)',
      'ratios are paired within a round and then summarized as median [min, max] over rounds; effective GFLOP/s = the multiply-adds x 2 a step needs (no dx for the first layer) / step time',
      'reported, not a target: tapfit / PyTorch (bench/python/torch_peer.py, same models, SGD, loss read back each step)',
      'the 2-thread targets assume 2 free cores: compare machine.loadAverage (and each child\'s load at start) with the core count',
      'reported, not a target (added 2026-11-30 after the targets were fixed): steadyStepsPerSecond and steadyTwoThreadSpeedup, the same Trainer in the same child after 1.5 s more of training (the first seconds of a 2-thread process ran slower), timed over 1 s',
      'reported, not a target (added 2026-12-01 after the targets were fixed): twoProcessCeiling, per round two 1-thread children started at once (no communication, nothing shared but the host) after the 1-thread child: their summed steps/s over that child\'s, the most any use of two threads could give on this host; matMul 1024 the same; skipped with --no-ceiling',
    ],
    matMulGFlops: Object.fromEntries([256, 512, 1024, 2048].map((size) => [size, Object.fromEntries(VARIANTS.map((v) => [v, gflops(size, v)]))])),
    matMulMs: matMulTimes,
    convForwardBackwardMs: conv,
    compositeKernelsMs: composites,
    mlpStepsPerSecond: Object.fromEntries(VARIANTS.map((v) => [v, steps(mlpTimes[v])])),
    mlpStepMs: mlpTimes,
    cnnStepsPerSecond: Object.fromEntries(VARIANTS.map((v) => [v, steps(cnnTimes[v])])),
    cnnStepMs: cnnTimes,
    training: { rounds: training, twins, summary },
    peer: 'skipped' in peer ? peer : { ...peer, rounds: peerRounds },
    totalSeconds: round((performance.now() - started) / 1000, 1),
  }, targets);
}

/** Median with its spread over rounds. */
interface Spread {
  median: number;
  min: number;
  max: number;
  values: number[];
}

function spread(values: number[]): Spread {
  const v = values.filter(Number.isFinite);
  if (!v.length) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, values: [] };
  return { median: round(median(v), 3), min: round(Math.min(...v), 3), max: round(Math.max(...v), 3), values: v.map((x) => round(x, 3)) };
}

interface ModelSummary {
  label: string;
  stepGFlop: number;
  /** tapfit steps/s (fast kernels) by thread count, medians. */
  stepsPerSecond: Record<number, number>;
  plainStepsPerSecond: Record<number, number>;
  twoThreadSpeedup: Spread;
  /** The same after 1.5 s more training in each child (reported, not a target). */
  steadyStepsPerSecond: Record<number, number>;
  steadyTwoThreadSpeedup: Spread;
  /** Two 1-thread children at once: their summed steps/s over the same round's 1-thread child (reported, not a target). */
  twoProcessCeiling: Spread;
  /** fast / plain steps/s inside one child, 1 thread. */
  fastGain: Spread;
  effectiveGFlops: Record<number, number>;
  /** Effective GFLOP/s / matMul 1024 GFLOP/s of the same child. */
  ofMatMul: Record<number, Spread>;
  torchStepsPerSecond: Record<number, number>;
  /** tapfit / PyTorch steps/s, each a median over rounds. */
  ofTorch: Record<number, number>;
}

function summarizeTraining(training: TrainingRates[][], twins: TrainingRates[][], peer: PeerRound[]): { matMul1024GFlops: Record<number, Spread>; matMul1024TwoProcessCeiling: Spread; models: Record<string, ModelSummary> } {
  const at = (pair: TrainingRates[], t: number) => pair.find((x) => x.threads === t);
  const models: Record<string, ModelSummary> = {};
  for (const m of STEP_MODELS) {
    const rates = (t: number, k: 'fast' | 'plain') => training.map((pair) => at(pair, t)?.models[m.name]?.[k] ?? Number.NaN);
    const byThreads = <T>(f: (t: number) => T) => ({ 1: f(1), 2: f(2) });
    const torch = (t: number) => median(peer.filter((p) => p.model === m.name && p.threads === t).map((p) => p.stepsPerSecond));
    const fast = byThreads((t) => median(rates(t, 'fast').filter(Number.isFinite)));
    models[m.name] = {
      label: m.label,
      stepGFlop: round(m.stepFlops / 1e9, 3),
      stepsPerSecond: byThreads((t) => round(fast[t as 1 | 2], 3)),
      plainStepsPerSecond: byThreads((t) => round(median(rates(t, 'plain').filter(Number.isFinite)), 3)),
      twoThreadSpeedup: spread(training.map((pair) => (at(pair, 2)?.models[m.name]?.fast ?? Number.NaN) / (at(pair, 1)?.models[m.name]?.fast ?? Number.NaN))),
      steadyStepsPerSecond: byThreads((t) => round(median(training.map((pair) => at(pair, t)?.models[m.name]?.steady ?? Number.NaN).filter(Number.isFinite)), 3)),
      steadyTwoThreadSpeedup: spread(training.map((pair) => (at(pair, 2)?.models[m.name]?.steady ?? Number.NaN) / (at(pair, 1)?.models[m.name]?.steady ?? Number.NaN))),
      twoProcessCeiling: spread(twins.map((two, i) => two.reduce((sum, x) => sum + (x.models[m.name]?.fast ?? Number.NaN), 0) / (at(training[i], 1)?.models[m.name]?.fast ?? Number.NaN))),
      fastGain: spread(training.map((pair) => { const x = at(pair, 1)?.models[m.name]; return x ? x.fast / x.plain : Number.NaN; })),
      effectiveGFlops: byThreads((t) => round((fast[t as 1 | 2] * m.stepFlops) / 1e9, 2)),
      ofMatMul: byThreads((t) => spread(training.map((pair) => { const x = at(pair, t); return x ? ((x.models[m.name]?.fast ?? Number.NaN) * m.stepFlops) / 1e9 / x.matMul1024GFlops : Number.NaN; }))),
      torchStepsPerSecond: byThreads((t) => round(torch(t), 3)),
      ofTorch: byThreads((t) => round(fast[t as 1 | 2] / torch(t), 3)),
    };
  }
  return {
    matMul1024GFlops: { 1: spread(training.map((p) => at(p, 1)?.matMul1024GFlops ?? Number.NaN)), 2: spread(training.map((p) => at(p, 2)?.matMul1024GFlops ?? Number.NaN)) },
    matMul1024TwoProcessCeiling: spread(twins.map((two, i) => (two[0].matMul1024GFlops + two[1].matMul1024GFlops) / (at(training[i], 1)?.matMul1024GFlops ?? Number.NaN))),
    models,
  };
}

function printTraining(summary: ReturnType<typeof summarizeTraining>): void {
  if (!Number.isFinite(summary.matMul1024GFlops[1].median)) return;
  console.log(`\nmatMul 1024: ${summary.matMul1024GFlops[1].median} GFLOP/s with 1 thread, ${summary.matMul1024GFlops[2].median} with 2 (medians over rounds); two 1-thread processes at once / one: ${summary.matMul1024TwoProcessCeiling.median}`);
  console.table(Object.fromEntries(Object.values(summary.models).map((m) => [m.label, {
    'steps/s 1T': m.stepsPerSecond[1],
    'steps/s 2T': m.stepsPerSecond[2],
    '2T / 1T': m.twoThreadSpeedup.median,
    '2T / 1T steady': m.steadyTwoThreadSpeedup.median,
    '2 proc / 1T': m.twoProcessCeiling.median,
    'fast / plain 1T': m.fastGain.median,
    'GFLOP/s 1T': m.effectiveGFlops[1],
    '/ matMul 1T': m.ofMatMul[1].median,
    '/ matMul 2T': m.ofMatMul[2].median,
    'PyTorch 1T': m.torchStepsPerSecond[1],
    'PyTorch 2T': m.torchStepsPerSecond[2],
    '/ PyTorch 1T': m.ofTorch[1],
    '/ PyTorch 2T': m.ofTorch[2],
  }])));
}

function summarize(t: Record<string, Timing>): string {
  return Object.entries(t).map(([v, x]) => `${v} ${'ms' in x ? `${x.ms.toFixed(2)} ms` : `FAILS (${x.error.slice(0, 60)})`}`).join(' | ');
}
