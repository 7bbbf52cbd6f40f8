/**
 * Backends side by side: cpu, stock wasm (shim uninstalled) and shimmed wasm in one
 * process, interleaved round by round; then 1- and 2-thread shimmed wasm in child
 * processes (the thread count is fixed per process), alternated.
 *
 *   npx tsc -b bench && node bench/dist/src/run.js backend [--quick] [--no-threads]
 *
 * Figures: matMul GFLOP/s (256..2048), conv2d forward+backward ms, MLP 784-512-512-10
 * (batch 128, SGD) and tfjs-layers CNN conv16-pool-conv32-pool-dense128 (batch 64, SGD)
 * training steps/s, and the shim's composite kernels against the stock kernels they
 * replace. cpu is ~40x slower, so it gets fewer repetitions and skips matMul 2048
 * (about 17 s per product). Every timing forces completion with dataSync().
 */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { installWasmShim, selectBackend, uninstallWasmShim } from '@tapfit/core';
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
  return {
    reps,
    warmup: { cpu: 1, 'wasm-stock': 2, 'wasm-shim': 3 },
    setup() {
      const dims = [784, 512, 512, 10];
      const params = dims.slice(1).flatMap((d, i) => [
        tf.variable(tf.mul(tf.randomNormal([dims[i], d]), Math.sqrt(2 / dims[i]))),
        tf.variable(tf.zeros([d])),
      ]);
      const x = tf.randomNormal([128, 784]);
      const y = tf.oneHot(tf.tensor1d(Array.from({ length: 128 }, (_, i) => i % 10), 'int32'), 10).toFloat();
      const opt = tf.train.sgd(0.01);
      const forward = () => {
        let h: tf.Tensor = x;
        for (let i = 0; i < params.length; i += 2) {
          h = tf.add(tf.matMul(h, params[i]), params[i + 1]);
          if (i + 2 < params.length) h = tf.relu(h);
        }
        return tf.losses.softmaxCrossEntropy(y, h) as tf.Scalar;
      };
      return {
        step: () => tf.tidy(() => void opt.minimize(forward, true)!.dataSync()),
        dispose: () => {
          tf.dispose([...params, x, y]);
          opt.dispose();
        },
      };
    },
  };
}

/** tfjs-layers conv16-pool-conv32-pool-dense128-dense10 on 28x28x1, batch 64, SGD. */
function cnn(reps: Workload['reps']): Workload {
  return {
    reps,
    warmup: { cpu: 1, 'wasm-shim': 3 },
    setup() {
      const model = tf.sequential({
        layers: [
          tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', activation: 'relu' }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.conv2d({ filters: 32, kernelSize: 3, padding: 'same', activation: 'relu' }),
          tf.layers.maxPooling2d({ poolSize: 2 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 128, activation: 'relu' }),
          tf.layers.dense({ units: 10, activation: 'softmax' }),
        ],
      });
      model.compile({ optimizer: tf.train.sgd(0.01), loss: 'categoricalCrossentropy' });
      const x = tf.randomNormal([64, 28, 28, 1]);
      const y = tf.oneHot(tf.tensor1d(Array.from({ length: 64 }, (_, i) => i % 10), 'int32'), 10).toFloat();
      return {
        step: () => model.trainOnBatch(x, y),
        dispose: () => {
          model.dispose();
          tf.dispose([x, y]);
        },
      };
    },
  };
}

interface ThreadFigures {
  threads: number;
  matMul1024GFlops: number;
  mlpStepsPerSecond: number;
  cnnStepsPerSecond: number;
}

/** Child-process entry: shimmed wasm with `threads` threads; prints one JSON line. */
async function threadsChild(threads: number, quick: boolean): Promise<void> {
  await selectBackend('wasm', { threads, log: false });
  const reps = quick ? 3 : 7;
  const mm = await interleave(matMul(1024, { 'wasm-shim': reps }), ['wasm-shim']);
  const m = await interleave(mlp({ 'wasm-shim': reps * 2 }), ['wasm-shim']);
  const c = await interleave(cnn({ 'wasm-shim': reps }), ['wasm-shim']);
  const figures: ThreadFigures = {
    threads,
    matMul1024GFlops: round((2 * 1024 ** 3) / ms(mm['wasm-shim']) / 1e6, 2),
    mlpStepsPerSecond: round(1000 / ms(m['wasm-shim']), 2),
    cnnStepsPerSecond: round(1000 / ms(c['wasm-shim']), 2),
  };
  console.log(`THREADS ${JSON.stringify(figures)}`);
}

function runThreadsChild(threads: number, quick: boolean): Promise<ThreadFigures & { wallSeconds: number; exitedByItself: boolean }> {
  const runner = path.resolve(__dirname, '..', 'run.js');
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [runner, 'backend', `--threads-child=${threads}`, ...(quick ? ['--quick'] : [])], { timeout: 180_000 }, (err, stdout, stderr) => {
      const line = stdout.split('\n').find((l) => l.startsWith('THREADS '));
      if (err || !line) return reject(new Error(`threads child (${threads}) failed: ${err?.message ?? ''}\n${stderr}`));
      resolve({ ...(JSON.parse(line.slice(8)) as ThreadFigures), wallSeconds: round((performance.now() - t0) / 1000, 1), exitedByItself: true });
    });
  });
}

export async function run(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const child = args.find((a) => a.startsWith('--threads-child='));
  if (child) return threadsChild(Number(child.split('=')[1]), quick);

  const started = performance.now();
  await selectBackend('wasm');
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

  const threadRuns: Array<Awaited<ReturnType<typeof runThreadsChild>>> = [];
  if (!args.includes('--no-threads')) {
    for (let i = 0; i < 2; i++) for (const t of [1, 2]) threadRuns.push(await runThreadsChild(t, quick));
    console.log('threads:', threadRuns);
  }

  const steps = (t: Timing | undefined) => round(1000 / ms(t), 3);
  const mlpShim = steps(mlpTimes['wasm-shim']);
  const cnnShim = steps(cnnTimes['wasm-shim']);
  const targets: Target[] = [
    target('MLP steps/s, shimmed wasm / stock wasm', round(mlpShim / steps(mlpTimes['wasm-stock']), 2), 'min', 7),
    target('MLP steps/s, shimmed wasm / cpu', round(mlpShim / steps(mlpTimes.cpu), 2), 'min', 15),
    target('matMul 1024 GFLOP/s, shimmed wasm, 1 thread', gflops(1024, 'wasm-shim'), 'min', 40),
    target('CNN steps/s, shimmed wasm / cpu', round(cnnShim / steps(cnnTimes.cpu), 2), 'min', 50),
  ];
  const threadSummary = (t: number) => {
    const runs = threadRuns.filter((x) => x.threads === t);
    return runs.length ? {
      matMul1024GFlops: median(runs.map((x) => x.matMul1024GFlops)),
      mlpStepsPerSecond: median(runs.map((x) => x.mlpStepsPerSecond)),
      cnnStepsPerSecond: median(runs.map((x) => x.cnnStepsPerSecond)),
    } : null;
  };
  writeResults('backend', {
    command: 'npx tsc -b bench && node bench/dist/src/run.js backend',
    notes: [
      'cpu, wasm-stock (shim uninstalled) and wasm-shim run interleaved in one process; times are medians (ms)',
      'cpu matMul 2048 skipped (about 17 s per product); cpu gets 1-3 repetitions',
      'wasm-stock cannot train convolutions (Conv2DBackpropFilter missing): its conv and CNN entries hold the error',
      'threads: 1- and 2-thread shimmed wasm in child processes, alternated twice; medians',
    ],
    matMulGFlops: Object.fromEntries([256, 512, 1024, 2048].map((s) => [s, Object.fromEntries(VARIANTS.map((v) => [v, gflops(s, v)]))])),
    matMulMs: matMulTimes,
    convForwardBackwardMs: conv,
    compositeKernelsMs: composites,
    mlpStepsPerSecond: Object.fromEntries(VARIANTS.map((v) => [v, steps(mlpTimes[v])])),
    mlpStepMs: mlpTimes,
    cnnStepsPerSecond: Object.fromEntries(VARIANTS.map((v) => [v, steps(cnnTimes[v])])),
    cnnStepMs: cnnTimes,
    threads: { runs: threadRuns, oneThread: threadSummary(1), twoThreads: threadSummary(2) },
    totalSeconds: round((performance.now() - started) / 1000, 1),
  }, targets);
}

function summarize(t: Record<string, Timing>): string {
  return Object.entries(t).map(([v, x]) => `${v} ${'ms' in x ? `${x.ms.toFixed(2)} ms` : `FAILS (${x.error.slice(0, 60)})`}`).join(' | ');
}
