/**
 * Memory planning: peak training bytes and step time of the segment executor under
 * all-store, all-recompute and the BudgetPlanner's plan for half the all-store peak,
 * against the planner's prediction, for a residual MLP and a small CNN at several depths.
 *
 *   npm run bench -- memory [--backend=wasm|cpu] [--reps=11] [--depths=4,8,16,32]
 *
 * Peak = tf.profile(step).peakBytes minus the bytes live before the step (TF.js's
 * accounting: every tensor handle counts, clones included). The step measured is the
 * loss and gradient computation (the Backprop service); the optimizer update is the
 * same under every plan and is left out. Step times are medians of interleaved runs;
 * time ratios are medians of per-repetition ratios.
 */
import * as tf from '@tensorflow/tfjs';
import {
  AutodiffBackprop,
  BudgetPlanner,
  ErrorCodes,
  losses,
  predictPeakBytes,
  profileSegments,
  segmentModel,
  SegmentExecutor,
  selectBackend,
  storeAllPlan,
  TapfitError,
  type Backprop,
  type MemoryPlan,
  type MemoryPolicy,
  type MemoryProfile,
  type Segment,
  type SegmentContext,
  type TrainableModel,
} from '@tapfit/core';
import { median, round, target, writeResults, type Target } from '../results';

const training: SegmentContext = { training: true, recomputing: false, step: 0 };
const loss = losses.softmaxCrossEntropy;
const CLASSES = 10;

interface Workload {
  name: string;
  build(depth: number): TrainableModel;
  sample(): { x: tf.Tensor; y: tf.Tensor };
}

const weight = (shape: number[], scale: number): tf.Variable => tf.variable(tf.mul(tf.randomNormal(shape), scale));

/** Residual MLP blocks y = x + relu(x W1 + b1) W2 + b2 (width d, hidden h), then a dense head. */
function residualMlp(d: number, h: number, batch: number): Workload {
  return {
    name: 'residual-mlp',
    build(depth) {
      const blocks: Segment[] = Array.from({ length: depth }, (_, i) => {
        const [w1, b1, w2, b2] = [weight([d, h], 1 / Math.sqrt(d)), weight([h], 0), weight([h, d], 0.3 / Math.sqrt(h)), weight([d], 0)];
        return { name: `block${i}`, params: [w1, b1, w2, b2], forward: ([x]) => [tf.add(x, tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2))] };
      });
      const [w, b] = [weight([d, CLASSES], 1 / Math.sqrt(d)), weight([CLASSES], 0)];
      return segmentModel([...blocks, { name: 'head', params: [w, b], forward: ([x]) => [tf.add(tf.matMul(x, w), b)] }]);
    },
    sample: () => ({ x: tf.randomNormal([batch, d]), y: labels(batch) }),
  };
}

/** Conv stem, residual blocks y = x + conv(relu(conv(x))) (3x3, same), global average pool + dense. */
function smallCnn(size: number, channels: number, batch: number): Workload {
  const conv = (x: tf.Tensor, w: tf.Variable): tf.Tensor4D => tf.conv2d(x as tf.Tensor4D, w as unknown as tf.Tensor4D, 1, 'same');
  return {
    name: 'small-cnn',
    build(depth) {
      const stemW = weight([3, 3, 3, channels], 0.3);
      const stem: Segment = { name: 'stem', params: [stemW], forward: ([x]) => [tf.relu(conv(x, stemW))] };
      const blocks: Segment[] = Array.from({ length: depth }, (_, i) => {
        const [w1, w2] = [weight([3, 3, channels, channels], 0.5 / Math.sqrt(9 * channels)), weight([3, 3, channels, channels], 0.3 / Math.sqrt(9 * channels))];
        return { name: `block${i}`, params: [w1, w2], forward: ([x]) => [tf.add(x, conv(tf.relu(conv(x, w1)), w2))] };
      });
      const w = weight([channels, CLASSES], 1 / Math.sqrt(channels));
      const head: Segment = { name: 'head', params: [w], forward: ([x]) => [tf.matMul(tf.mean(x, [1, 2]), w)] };
      return segmentModel([stem, ...blocks, head]);
    },
    sample: () => ({ x: tf.randomNormal([batch, size, size, 3]), y: labels(batch) }),
  };
}

const labels = (n: number): tf.Tensor => tf.tensor1d(Array.from({ length: n }, (_, i) => i % CLASSES), 'int32');

interface Config {
  name: 'autodiff' | 'store' | 'recompute' | 'planner';
  backprop: Backprop;
  plan: MemoryPlan;
  predicted?: number;
  budget?: number;
}

function step(c: Config, model: TrainableModel, x: tf.Tensor, y: tf.Tensor): void {
  const vars = model.segments.flatMap((s) => s.params);
  const r = c.backprop.compute({ x, y, segments: model.segments, ctx: training, variables: vars, plan: c.plan, loss });
  r.value.dataSync(); // completion
  tf.dispose([r.value, ...Object.values(r.grads)]);
}

async function peakOf(c: Config, model: TrainableModel, x: tf.Tensor, y: tf.Tensor): Promise<number> {
  const start = tf.memory().numBytes;
  const info = await tf.profile(() => step(c, model, x, y));
  return info.peakBytes - start;
}

/** The planner's plan for `budget`, or its TAPFIT_E_MEMORY error when no plan fits. */
function planFor(budget: number, profile: MemoryProfile, names: string[], model: TrainableModel): MemoryPlan | TapfitError {
  try {
    return new BudgetPlanner({ budgetBytes: budget, profile }).plan({ model, segmentNames: names, params: {} });
  } catch (err) {
    if (err instanceof TapfitError && err.code === ErrorCodes.MEMORY) return err;
    throw err;
  }
}

const planOf = (model: TrainableModel, policy: MemoryPolicy): MemoryPlan => ({
  segments: model.segments.map((s) => ({ name: s.name, policy })),
  extraBytes: [],
});

export async function run(args: string[]): Promise<void> {
  const arg = (name: string): string | undefined => args.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
  const reps = Number(arg('reps') ?? 11);
  const depths = (arg('depths') ?? '4,8,16,32').split(',').map(Number);
  let backend = arg('backend') ?? 'wasm';
  try {
    await selectBackend(backend as 'wasm' | 'cpu', { log: false });
  } catch (err) {
    console.log(`backend ${backend} unavailable (${(err as Error).message}); using cpu with small sizes`);
    backend = 'cpu';
    await selectBackend('cpu', { log: false });
  }
  tf.env().set('PROD', true);
  const small = backend === 'cpu';
  const workloads = small ? [residualMlp(32, 64, 64), smallCnn(6, 4, 4)] : [residualMlp(128, 512, 256), smallCnn(16, 16, 16)];

  const rows: Record<string, unknown>[] = [];
  const predictionErrors: number[] = [];
  const infeasible: Record<string, unknown>[] = [];
  const targets: Target[] = [];
  const started = performance.now();
  for (const w of workloads) {
    for (const depth of depths) {
      const model = w.build(depth);
      const { x, y } = w.sample();
      const profile = await profileSegments(model, { x, y }, loss);
      const names = model.segments.map((s) => s.name);
      const executor = new SegmentExecutor();
      const configs: Config[] = [
        { name: 'autodiff', backprop: new AutodiffBackprop(), plan: storeAllPlan(names) },
        { name: 'store', backprop: executor, plan: planOf(model, 'store') },
        { name: 'recompute', backprop: executor, plan: planOf(model, 'recompute') },
      ];
      for (const c of configs.slice(1)) c.predicted = predictPeakBytes(profile, c.plan.segments.map((s) => s.policy));

      for (const c of configs) step(c, model, x, y); // warm-up
      const peaks = new Map<string, number>();
      for (const c of configs) peaks.set(c.name, await peakOf(c, model, x, y));
      const budget = Math.floor(peaks.get('store')! / 2);
      const planned = planFor(budget, profile, names, model);
      if (planned instanceof TapfitError) {
        infeasible.push({ model: w.name, depth, budgetBytes: budget, error: planned.message });
      } else {
        const planner: Config = { name: 'planner', backprop: executor, plan: planned, predicted: planned.predictedPeakBytes, budget };
        step(planner, model, x, y);
        peaks.set('planner', await peakOf(planner, model, x, y));
        configs.push(planner);
      }

      const times = new Map<string, number[]>(configs.map((c) => [c.name, []]));
      for (let r = 0; r < reps; r++) {
        for (let k = 0; k < configs.length; k++) {
          const c = configs[(k + r) % configs.length]; // rotate the order so no config always runs first
          const t0 = performance.now();
          step(c, model, x, y);
          times.get(c.name)!.push(performance.now() - t0);
        }
      }
      const ms = (name: string): number => median(times.get(name)!);
      // Ratios from the same repetition (run back to back) cancel most of the machine's drift.
      const vsStore = (name: string): number => median(times.get(name)!.map((t, r) => t / times.get('store')![r]));
      for (const c of configs) {
        const measured = peaks.get(c.name)!;
        const error = c.predicted === undefined ? undefined : c.predicted / measured - 1;
        if (error !== undefined) predictionErrors.push(Math.abs(error));
        rows.push({
          model: w.name,
          depth,
          config: c.name,
          measuredPeakBytes: measured,
          predictedPeakBytes: c.predicted ?? null,
          predictionError: error === undefined ? null : round(error, 5),
          stepMs: round(ms(c.name), 2),
          stepVsStore: round(vsStore(c.name), 3),
          peakVsStore: round(measured / peaks.get('store')!, 4),
          ...(c.budget !== undefined ? { budgetBytes: c.budget, recomputed: c.plan.segments.filter((s) => s.policy === 'recompute').length } : {}),
        });
      }
      if (depth === depths[depths.length - 1]) {
        targets.push(target(`${w.name} depth ${depth}: all-recompute peak / all-store peak`, peaks.get('recompute')! / peaks.get('store')!, 'max', 0.3));
      }
      targets.push(target(`${w.name} depth ${depth}: all-recompute step time / all-store step time (median of paired ratios)`, vsStore('recompute'), 'max', 1.4));
      targets.push(
        peaks.has('planner')
          ? target(`${w.name} depth ${depth}: planner's measured peak / budget (half the all-store peak)`, peaks.get('planner')! / budget, 'max', 1)
          : // No plan fits (TAPFIT_E_MEMORY): the least any plan here reaches is all-recompute's peak.
            target(`${w.name} depth ${depth}: NO PLAN FITS half the all-store peak; all-recompute peak / budget`, peaks.get('recompute')! / budget, 'max', 1),
      );
      const planner = peaks.has('planner') ? `planner ${mib(peaks.get('planner')!)} (budget ${mib(budget)}), ` : `planner: no plan fits ${mib(budget)}, `;
      console.log(
        `${w.name} depth ${depth}: peak MiB store ${mib(peaks.get('store')!)}, recompute ${mib(peaks.get('recompute')!)}, ${planner}autodiff ${mib(peaks.get('autodiff')!)}; ` +
          `time vs store: recompute ${vsStore('recompute').toFixed(3)}, autodiff ${vsStore('autodiff').toFixed(3)}`,
      );
      tf.dispose([x, y, ...model.segments.flatMap((s) => s.params)]);
    }
  }
  targets.unshift(target('prediction error, worst row: |predicted / measured - 1|', Math.max(...predictionErrors), 'max', 0.1));
  console.table(rows.map((r) => ({ ...r, measuredPeakBytes: mib(r.measuredPeakBytes as number), predictedPeakBytes: r.predictedPeakBytes === null ? '-' : mib(r.predictedPeakBytes as number) })));
  writeResults(
    'memory',
    {
      backend,
      reps,
      seconds: round((performance.now() - started) / 1000, 1),
      step: 'loss + gradients through the Backprop service (optimizer update excluded)',
      bytes: 'tf.profile peakBytes minus bytes live before the step (TF.js accounting: clones count)',
      workloads: small ? 'cpu sizes: MLP d=32 h=64 batch 64; CNN 6x6x3 -> 4 channels, batch 4' : 'MLP d=128 h=512 batch 256; CNN 16x16x3 -> 16 channels, batch 16',
      rows,
      infeasible,
    },
    targets,
  );
}

const mib = (b: number): string => (b / 2 ** 20).toFixed(2);
