import * as tf from '@tensorflow/tfjs';
import { installGradientFixes, installWasmFastKernels, scaledSum, selectBackend, uninstallGradientFixes, uninstallWasmFastKernels } from '@tapfit/core';
import { median, round, writeResults } from '../results';

/**
 * Two cases of the wasm fast kernels that the per-step profile hides (no targets; the
 * figures back the routes and the numbers in packages/core's README and comments):
 *
 * 1. Products of a batch of a few rows (batch-1 training, pipeline micro-batches):
 *    dy W^T, x W and x^T dy for 1, 2, 4 and 8 rows against W [1568,128] (the demo CNN's
 *    dense layer) and W [2048,2048], with the fast kernels on and off (off: XNNPACK's
 *    product through the training shim), alternated round by round.
 * 2. Subnormal numbers: the fused momentum update (TapfitScaledSum, a v + b g) and a
 *    stock multiply on 200,704 elements that are normal, subnormal, or zero; and a
 *    velocity whose gradient stopped, 800 updates later, fused against the stock chain.
 * 3. The gradient of an Embedding layer (UnsortedSegmentSum of 32 x 50 token rows of 32
 *    values into V rows): tapfit's one pass on wasm and on cpu, and tfjs's stock cpu kernel
 *    (a pass over all rows per segment; the wasm shim used to borrow it), timed once per V
 *    because it takes seconds.
 * 4. Comparisons and Maximum with broadcasting: Equal and Maximum of [32, 50, 64] against
 *    [32, 50, 64], [32, 1, 64], [32, 50, 1] and [1], fast kernels on and off, alternated.
 * 4b. Slice, GatherV2, Tile: 128 rows of a [20000, 784] tensor (a batch from a dataset), a
 *    rank-6 slice of the dilated-conv gradient's shape, a gather of 128 rows, and a
 *    LayerNormalization statistic tiled from [128, 1] to [128, 256], and two means of
 *    [32, 16, 16, 32] (BatchNormalization's batch statistics, global average pooling).
 * 4c. The kernels that keep NaN (pooling with its scan for -Infinity, relu, relu6,
 *    clipByValue) on [64, 28, 28, 32], fast kernels on and off: what keeping NaN costs.
 * 5. Tile and its gradient in a training step: an MLP 64-256-256-10 with two
 *    LayerNormalizations (which tile their statistics), batch 128, gradients of all
 *    weights, with tapfit's tile gradient and fast Tile, and with tfjs's (the gradient
 *    fixes and the fast kernels taken out), alternated.
 *
 *   npm run bench -- kernels [--threads=2]   (writes kernels.json, or kernels-2-threads.json)
 */

const ROWS = [1, 2, 4, 8];
const LAYERS: Array<[number, number]> = [
  [1568, 128],
  [2048, 2048],
];
const REPS = 9;

/**
 * Median microseconds of `fn` on fresh operands (`fresh()` makes new data each call,
 * untimed: in training the weights change every step, and XNNPACK would otherwise reuse
 * the right operand it packed for the same data), with the fast kernels on and off,
 * alternated round by round so that drift hits both.
 */
function paired(fresh: () => tf.Tensor[], fn: (operands: tf.Tensor[]) => tf.Tensor, calls: number): { fast: number; plain: number } {
  const once = () => {
    let us = 0;
    for (let i = 0; i < calls; i++) {
      const operands = fresh();
      const t0 = performance.now();
      const out = fn(operands);
      us += (performance.now() - t0) * 1000;
      tf.dispose([out, ...operands]);
    }
    return us / calls;
  };
  const fast: number[] = [];
  const plain: number[] = [];
  for (let r = 0; r < REPS; r++) {
    for (const on of [true, false]) {
      if (on) installWasmFastKernels();
      else uninstallWasmFastKernels();
      once(); // warm-up of this variant
      (on ? fast : plain).push(once());
    }
  }
  installWasmFastKernels();
  return { fast: round(median(fast), 1), plain: round(median(plain), 1) };
}

function products() {
  const rows: Record<string, unknown>[] = [];
  for (const [K, N] of LAYERS) {
    const calls = K * N > 1e6 ? 5 : 40;
    const w = tf.randomNormal([K, N], 0, 1, 'float32', 1);
    for (const M of ROWS) {
      const x = tf.randomNormal([M, K], 0, 1, 'float32', 2);
      const dy = tf.randomNormal([M, N], 0, 1, 'float32', 3);
      const fresh = () => [w, x, dy].map((t) => tf.add(t, 0));
      const cases: Record<string, (o: tf.Tensor[]) => tf.Tensor> = {
        'dy W^T': ([w_, , dy_]) => tf.matMul(dy_, w_, false, true),
        'x W': ([w_, x_]) => tf.matMul(x_, w_),
        'x^T dy': ([, x_, dy_]) => tf.matMul(x_, dy_, true, false),
      };
      for (const [product, fn] of Object.entries(cases)) {
        const t = paired(fresh, fn, calls);
        rows.push({ product, W: `[${K},${N}]`, rows: M, fastUs: t.fast, xnnpackUs: t.plain, speedup: round(t.plain / t.fast, 2) });
      }
      tf.dispose([x, dy]);
    }
    w.dispose();
  }
  return rows;
}

function subnormals() {
  const n = 200_704;
  const time = (fn: () => void) => {
    for (let i = 0; i < 10; i++) fn();
    const xs: number[] = [];
    for (let r = 0; r < REPS; r++) {
      const t0 = performance.now();
      for (let i = 0; i < 20; i++) fn();
      xs.push(((performance.now() - t0) / 20) * 1000);
    }
    return round(median(xs), 1);
  };
  // One op on operands that are normal, subnormal or zero.
  const operands: Record<string, unknown>[] = [];
  for (const [values, v] of [['normal (1e-3)', 1e-3], ['subnormal (1e-40)', 1e-40], ['zero', 0]] as const) {
    const velocity = tf.fill([n], v);
    const grad = tf.zeros([n]);
    operands.push({ values, 'scaledSum(v, 0.9, g, 1) us': time(() => scaledSum(velocity, 0.9, grad, 1).dispose()), 'tf.mul(v, 0.9) us': time(() => tf.mul(velocity, 0.9).dispose()) });
    tf.dispose([velocity, grad]);
  }
  // A velocity whose gradient stopped (v <- 0.9 v from 1e-30, 800 updates), then timed
  // updates, with the fused kernel and with the stock chain.
  const decayed: Record<string, unknown>[] = [];
  for (const on of [true, false]) {
    if (on) installWasmFastKernels();
    else uninstallWasmFastKernels();
    const grad = tf.zeros([n]);
    let velocity = tf.fill([n], 1e-30);
    const step = () => {
      const next = scaledSum(velocity, 0.9, grad, 1);
      velocity.dispose();
      velocity = next;
    };
    for (let i = 0; i < 800; i++) step();
    const values = velocity.dataSync();
    const subnormal = values.filter((x) => x !== 0 && Math.abs(x) < 2 ** -126).length / n;
    decayed.push({ update: on ? 'fused (fast kernels)' : 'stock chain', 'us per update after 800': time(step), 'subnormal fraction after 800': subnormal });
    tf.dispose([velocity, grad]);
  }
  installWasmFastKernels();
  return { operands, decayed };
}

/** Milliseconds of one UnsortedSegmentSum of `rows` x 32 values into `segments` rows, median of `calls`. */
function segmentSumMs(rows: number, segments: number, calls: number): number {
  const x = tf.randomNormal([rows, 32], 0, 1, 'float32', 4);
  const ids = tf.randomUniform([rows], 0, segments, 'int32', 5) as tf.Tensor1D;
  tf.unsortedSegmentSum(x, ids, segments).dispose(); // warm-up
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    tf.unsortedSegmentSum(x, ids, segments).dataSync();
    times.push(performance.now() - t0);
  }
  tf.dispose([x, ids]);
  return round(median(times), 2);
}

async function embeddingGradient(): Promise<Record<string, unknown>[]> {
  const rows = 32 * 50;
  const out: Record<string, unknown>[] = [];
  for (const segments of [250, 1000]) {
    const wasm = segmentSumMs(rows, segments, 9);
    await tf.setBackend('cpu');
    const cpu = segmentSumMs(rows, segments, 9);
    uninstallGradientFixes(); // tfjs's own cpu kernel (this also takes the fast kernels out)
    const stock = segmentSumMs(rows, segments, 1);
    installGradientFixes();
    await tf.setBackend('wasm');
    installWasmFastKernels();
    out.push({ rows, segments, 'one pass, wasm ms': wasm, 'one pass, cpu ms': cpu, 'tfjs cpu kernel ms': stock, 'stock / one pass (cpu)': round(stock / cpu, 0) });
  }
  return out;
}

function slicesAndGathers() {
  const data = tf.randomNormal([20000, 784], 0, 1, 'float32', 10);
  const views = tf.randomNormal([1, 2, 3, 2, 32, 32], 0, 1, 'float32', 11);
  const rows = tf.range(1000, 1128, 1, 'int32');
  const column = tf.randomNormal([128, 1], 0, 1, 'float32', 12);
  const maps = tf.randomNormal([32, 16, 16, 32], 0, 1, 'float32', 13);
  const cases: Array<[string, () => tf.Tensor]> = [
    ['slice 128 rows of [20000,784]', () => tf.slice(data, [1000, 0], [128, 784])],
    ['slice [1,1,3,1,32,32] of [1,2,3,2,32,32]', () => tf.slice(views, [0, 0, 0, 0, 0, 0], [1, 1, 3, 1, 32, 32])],
    ['gather 128 rows of [20000,784]', () => tf.gather(data, rows)],
    ['tile [128,1] to [128,256]', () => tf.tile(column, [1, 256])],
    ['mean of [32,16,16,32] over [0,1,2] (batch statistics)', () => tf.mean(maps, [0, 1, 2])],
    ['mean of [32,16,16,32] over [1,2] (global average pooling)', () => tf.mean(maps, [1, 2])],
  ];
  const out = cases.map(([op, fn]) => {
    const t = paired(() => [], () => fn(), 20);
    return { op, fastUs: t.fast, stockUs: t.plain, speedup: round(t.plain / t.fast, 1) };
  });
  tf.dispose([data, views, rows, column, maps]);
  return out;
}

/** The NaN-keeping kernels (fast-kernels/nan-propagation.ts) against stock, on a CNN's activations: what keeping NaN costs. */
function nanKeeping() {
  const maps = tf.randomNormal([64, 28, 28, 32], 0, 1, 'float32', 10);
  const cases: Array<[string, () => tf.Tensor]> = [
    ['max pooling 2x2/2 of [64,28,28,32] (+ a scan of its output for -Infinity)', () => tf.maxPool(maps as tf.Tensor4D, 2, 2, 'valid')],
    ['average pooling 2x2/2 of [64,28,28,32] (+ the same scan)', () => tf.avgPool(maps as tf.Tensor4D, 2, 2, 'valid')],
    ['relu of [64,28,28,32]', () => tf.relu(maps)],
    ['relu6 of [64,28,28,32]', () => tf.relu6(maps)],
    ['clipByValue of [64,28,28,32]', () => tf.clipByValue(maps, -1, 1)],
  ];
  const out = cases.map(([op, fn]) => {
    const t = paired(() => [], () => fn(), 20);
    return { op, fastUs: t.fast, stockUs: t.plain, speedup: round(t.plain / t.fast, 2) };
  });
  maps.dispose();
  return out;
}

function broadcasts() {
  const rows: Record<string, unknown>[] = [];
  const a = tf.randomNormal([32, 50, 64], 0, 1, 'float32', 6);
  for (const shape of [[32, 50, 64], [32, 1, 64], [32, 50, 1], [1]]) {
    const b = tf.randomNormal(shape, 0, 1, 'float32', 7);
    for (const [op, fn] of [['Equal', tf.equal], ['Maximum', tf.maximum]] as const) {
      const t = paired(() => [], () => fn(a, b), 20);
      rows.push({ op, a: '[32,50,64]', b: `[${shape}]`, fastUs: t.fast, stockUs: t.plain, speedup: round(t.plain / t.fast, 1) });
    }
    b.dispose();
  }
  a.dispose();
  return rows;
}

async function layerNormStep(): Promise<Record<string, unknown>> {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [64], units: 256, activation: 'relu' }),
      tf.layers.layerNormalization(),
      tf.layers.dense({ units: 256, activation: 'relu' }),
      tf.layers.layerNormalization(),
      tf.layers.dense({ units: 10 }),
    ],
  });
  const x = tf.randomNormal([128, 64], 0, 1, 'float32', 8);
  const y = tf.oneHot(tf.randomUniform([128], 0, 10, 'int32', 9) as tf.Tensor1D, 10);
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const step = () => {
    const t0 = performance.now();
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, vars);
      value.dataSync();
      Object.values(grads).forEach((g) => g.dataSync());
    });
    return performance.now() - t0;
  };
  const tapfit: number[] = [];
  const stock: number[] = [];
  for (let r = 0; r < 3; r++) {
    for (const ours of [true, false]) {
      if (!ours) uninstallGradientFixes(); // also takes the fast kernels out
      step(); // warm-up of this variant
      for (let i = 0; i < 3; i++) (ours ? tapfit : stock).push(step());
      if (!ours) {
        installGradientFixes();
        installWasmFastKernels();
      }
    }
  }
  tf.dispose([x, y]);
  model.dispose();
  return { model: 'MLP 64-256-256-10, two LayerNormalizations, batch 128', 'tapfit ms': round(median(tapfit), 2), 'tfjs ms': round(median(stock), 2), speedup: round(median(stock) / median(tapfit), 1) };
}

export async function run(args: string[]): Promise<void> {
  const threads = Number(args.find((a) => a.startsWith('--threads='))?.split('=')[1] ?? 1);
  await selectBackend('wasm', { threads, log: false });
  const productRows = products();
  console.log(`\nproducts of a few rows (wasm, ${threads} thread${threads > 1 ? 's' : ''}; microseconds per call, medians of ${REPS} alternated rounds)`);
  console.table(productRows);
  const subnormalRows = subnormals();
  console.log(`\n200,704 elements: operands below 2^-126 (subnormal), microseconds per call`);
  console.table(subnormalRows.operands);
  console.log('a velocity whose gradient stopped, 800 updates later');
  console.table(subnormalRows.decayed);
  const broadcastRows = broadcasts();
  console.log('\ncomparisons and Maximum with broadcasting (microseconds per call, medians of alternated rounds)');
  console.table(broadcastRows);
  const sliceRows = slicesAndGathers();
  console.log('\nslices, gathers, tiles and means (microseconds per call, medians of alternated rounds)');
  console.table(sliceRows);
  const nanRows = nanKeeping();
  console.log('\nkernels that keep NaN (fast) against stock wasm, which made it a number (microseconds per call, medians of alternated rounds)');
  console.table(nanRows);
  const layerNorm = await layerNormStep();
  console.log('\ntile and its gradient in a training step (milliseconds, medians of alternated rounds)');
  console.table([layerNorm]);
  const embeddingRows = await embeddingGradient();
  console.log('\nthe gradient of an Embedding layer (UnsortedSegmentSum), milliseconds per call');
  console.table(embeddingRows);
  // One file per thread count (the thread count is fixed per process).
  writeResults(
    threads > 1 ? `kernels-${threads}-threads` : 'kernels',
    {
      backend: `wasm, ${threads} thread${threads > 1 ? 's' : ''}`,
      notes: [
        'products: fast = the wasm fast kernels (installWasmFastKernels), xnnpack = the training shim alone (XNNPACK packs W on every call); medians of alternated rounds',
        'subnormals: the fused update stores subnormal results as zero; its operands are not flushed, so a subnormal input still costs (as in a stock multiply)',
        'embeddingGradient: tapfit\'s one-pass UnsortedSegmentSum on wasm and cpu against tfjs\'s stock cpu kernel (one pass over all rows per segment), which the wasm shim borrowed before; the stock kernel is timed once',
      ],
      products: productRows,
      subnormals: subnormalRows,
      broadcasts: broadcastRows,
      slicesAndGathers: sliceRows,
      nanKeeping: nanRows,
      layerNormStep: layerNorm,
      embeddingGradient: embeddingRows,
    },
    [],
    `npm run bench -- kernels${args.length ? ` ${args.join(' ')}` : ''}`,
  );
}
