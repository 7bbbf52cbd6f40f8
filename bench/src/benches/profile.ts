/**
 * Where a training step's time goes: every wasm kernel of a tapfit Trainer step timed
 * (composites' inner kernels included), grouped (forward matMul, the two backward
 * matMuls, convolutions, transposes, element-wise bias/activation, reductions, pooling,
 * optimizer update, copies, host reads) for the three models of the backend benchmark,
 * with this issue's fast kernels on and off (rounds interleaved).
 *
 *   npm run bench -- profile [--quick] [--threads=2] [--models=mlp,cnn,mlp-big]
 *
 * Writes bench/results/profile.json and prints one table per model. Kernel times are
 * wall-clock self times (a composite's inner kernels are counted once, in their group);
 * "outside kernels" is the rest of the step: tfjs's engine and tape, tapfit's step, JS.
 * The CPU time of the process per step is reported too (on a shared machine it moves
 * less than wall time; with 1 thread it is the step's own work).
 */
import * as tf from '@tensorflow/tfjs';
import { installWasmFastKernels, selectBackend, sgd, SilentLogger, Trainer, uninstallWasmFastKernels, type TapfitPlugin } from '@tapfit/core';
import { KernelTimer, type KernelCall, type Phase } from '../lib/kernel-timer';
import { fixedBatch, STEP_MODELS, type StepModel } from '../lib/step-models';
import { median, round, writeResults } from '../results';

const GROUPS = [
  'matMul forward',
  'matMul backward dx = dy W^T',
  'matMul backward dW = x^T dy',
  'conv forward',
  'conv backward dx',
  'conv backward dW',
  'transposes',
  'element-wise (bias, activation, loss)',
  'reductions',
  'pooling',
  'optimizer update',
  'copies (Identity, Cast)',
  'other kernels',
  'host reads (readSync)',
  'outside kernels (engine, tape, JS)',
] as const;
type Group = (typeof GROUPS)[number];

const MATMUL = new Set(['BatchMatMul', '_FusedMatMul']);
const CONV_FORWARD = new Set(['Conv2D', 'FusedConv2D', 'DepthwiseConv2dNative', 'FusedDepthwiseConv2D']);
const CONV_DX = new Set(['Conv2DBackpropInput', 'DepthwiseConv2dNativeBackpropInput']);
const CONV_DW = new Set(['Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropFilter']);
const POOLING = new Set(['MaxPool', 'MaxPoolGrad', 'AvgPool', 'AvgPoolGrad']);
const REDUCTIONS = new Set(['Sum', 'Max', 'Min', 'Mean', 'Prod', 'ArgMax', 'ArgMin', 'All', 'Any']);
const COPIES = new Set(['Identity', 'Cast']);
const ELEMENTWISE = new Set(['Add', 'AddN', 'Sub', 'Multiply', 'RealDiv', 'Relu', 'Relu6', 'Step', 'TapfitReluGrad', 'Exp', 'Log', 'Neg', 'Maximum', 'Minimum', 'Sigmoid', 'Tanh', 'Square', 'Sqrt', 'Elu', 'LeakyRelu', 'Softmax', 'SquaredDifference', 'Abs', 'Sign', 'Greater', 'Less', 'Equal', 'Select']);

/** The group of one kernel call: composites' inner kernels count where their outer kernel does, except transposes. */
function groupOf(c: KernelCall): Group {
  if (c.phase === 'update') return 'optimizer update';
  if (c.name === 'Transpose') return 'transposes';
  if (MATMUL.has(c.outer)) {
    if (c.phase !== 'backward') return 'matMul forward';
    return c.outerAttrs.transposeA ? 'matMul backward dW = x^T dy' : 'matMul backward dx = dy W^T';
  }
  if (CONV_FORWARD.has(c.outer)) return c.phase === 'backward' ? 'conv backward dx' : 'conv forward';
  if (CONV_DX.has(c.outer)) return 'conv backward dx';
  if (CONV_DW.has(c.outer)) return 'conv backward dW';
  if (POOLING.has(c.outer)) return 'pooling';
  if (REDUCTIONS.has(c.outer)) return 'reductions';
  if (COPIES.has(c.outer)) return 'copies (Identity, Cast)';
  if (ELEMENTWISE.has(c.outer)) return 'element-wise (bias, activation, loss)';
  return 'other kernels';
}

interface RoundFigures {
  stepMs: number;
  cpuMs: number;
  groups: Record<Group, number>;
  cpuGroups: Record<Group, number>;
  calls: Record<Group, number>;
  flops: Record<Group, number>;
  kernels: Record<string, { ms: number; calls: number }>;
}

/** A Trainer on model `m` with a plugin that reports the phase (forward until the backward hook, then update). */
async function trainerFor(m: StepModel, phase: { now: Phase }): Promise<Trainer> {
  const marker: TapfitPlugin = {
    name: 'profile-phase',
    core: '*',
    apply({ hooks }) {
      hooks.forward.tap({ stage: -100 }, (pass) => {
        phase.now = 'forward';
        return pass;
      });
      hooks.backward.tap({ stage: 100 }, (grads) => {
        phase.now = 'update';
        return grads;
      });
    },
  };
  const t = new Trainer({ model: m.build(), loss: (y, p) => tf.losses.softmaxCrossEntropy(y, p) as tf.Scalar, optimizer: sgd({ lr: 0.01 }), logger: new SilentLogger(), plugins: [marker] });
  await t.setup();
  return t;
}

async function profileModel(m: StepModel, steps: number, rounds: number): Promise<Record<'fast' | 'plain', RoundFigures[]>> {
  const phase = { now: 'other' as Phase };
  const trainer = await trainerFor(m, phase);
  const { x, y } = fixedBatch(m);
  let stepNo = 0;
  const step = () => {
    const r = trainer.trainStep({ x, y }, { step: stepNo, epoch: 0, batch: stepNo });
    stepNo++;
    r.loss.dispose();
    phase.now = 'other';
  };
  const out: Record<'fast' | 'plain', RoundFigures[]> = { fast: [], plain: [] };
  for (let r = 0; r < rounds + 1; r++) {
    for (const variant of ['fast', 'plain'] as const) {
      if (variant === 'fast') installWasmFastKernels();
      else uninstallWasmFastKernels();
      for (let i = 0; i < 2; i++) step(); // warm: XNNPACK operators and the heap settle
      const timer = new KernelTimer('wasm', () => phase.now);
      timer.recording = true;
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      for (let i = 0; i < steps; i++) step();
      const wall = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      timer.recording = false;
      timer.stop();
      if (r > 0) out[variant].push(summarize(timer, wall, (cpu.user + cpu.system) / 1000, steps));
    }
  }
  installWasmFastKernels();
  trainer.dispose();
  tf.dispose([x, y]);
  return out;
}

function summarize(timer: KernelTimer, wallMs: number, cpuMs: number, steps: number): RoundFigures {
  const zero = () => Object.fromEntries(GROUPS.map((g) => [g, 0])) as Record<Group, number>;
  const groups = zero();
  const cpuGroups = zero();
  const calls = zero();
  const flops = zero();
  const kernels: RoundFigures['kernels'] = {};
  let inKernels = 0;
  let inKernelsCpu = 0;
  for (const c of timer.calls) {
    const g = groupOf(c);
    groups[g] += c.selfMs / steps;
    cpuGroups[g] += c.selfCpuMs / steps;
    inKernelsCpu += c.selfCpuMs;
    calls[g] += 1 / steps;
    flops[g] += c.flops / steps;
    inKernels += c.selfMs;
    const key = `${c.phase} ${c.name}${c.nested ? ` (in ${c.outer})` : ''}${c.outerAttrs.transposeA ? ' tA' : ''}${c.outerAttrs.transposeB ? ' tB' : ''}`;
    const k = (kernels[key] ??= { ms: 0, calls: 0 });
    k.ms += c.selfMs / steps;
    k.calls += 1 / steps;
  }
  groups['host reads (readSync)'] = timer.hostReadMs / steps;
  cpuGroups['host reads (readSync)'] = timer.hostReadCpuMs / steps;
  calls['host reads (readSync)'] = timer.hostReads / steps;
  groups['outside kernels (engine, tape, JS)'] = (wallMs - inKernels - timer.hostReadMs) / steps;
  cpuGroups['outside kernels (engine, tape, JS)'] = (cpuMs - inKernelsCpu - timer.hostReadCpuMs) / steps;
  return { stepMs: wallMs / steps, cpuMs: cpuMs / steps, groups, cpuGroups, calls, flops, kernels };
}

/** Medians over rounds, figure by figure. */
function medianFigures(rs: RoundFigures[]) {
  const byGroup = (pick: (r: RoundFigures) => Record<Group, number>) => Object.fromEntries(GROUPS.map((g) => [g, median(rs.map((r) => pick(r)[g]))])) as Record<Group, number>;
  const groups = byGroup((r) => r.groups);
  const cpuGroups = byGroup((r) => r.cpuGroups);
  const stepMs = median(rs.map((r) => r.stepMs));
  const kernelNames = [...new Set(rs.flatMap((r) => Object.keys(r.kernels)))];
  const kernels = kernelNames
    .map((k) => ({ kernel: k, ms: round(median(rs.map((r) => r.kernels[k]?.ms ?? 0)), 3), calls: round(median(rs.map((r) => r.kernels[k]?.calls ?? 0)), 2) }))
    .sort((a, b) => b.ms - a.ms);
  return { stepMs, cpuMs: median(rs.map((r) => r.cpuMs)), stepMsSpread: [Math.min(...rs.map((r) => r.stepMs)), Math.max(...rs.map((r) => r.stepMs))], groups, cpuGroups, calls: byGroup((r) => r.calls), flops: byGroup((r) => r.flops), kernels };
}

export async function run(args: string[]): Promise<void> {
  const quick = args.includes('--quick');
  const threads = Number(args.find((a) => a.startsWith('--threads='))?.split('=')[1] ?? 1);
  const only = args.find((a) => a.startsWith('--models='))?.split('=')[1]?.split(',');
  await selectBackend('wasm', { threads, log: false });
  const results: Record<string, unknown> = {};
  for (const m of STEP_MODELS.filter((s) => !only || only.includes(s.name))) {
    const big = m.name === 'mlp-big';
    const steps = Math.max(2, Math.round((big ? 3 : 10) * (quick ? 0.5 : 1)));
    const rounds = quick ? 2 : 5;
    const raw = await profileModel(m, steps, rounds);
    const fast = medianFigures(raw.fast);
    const plain = medianFigures(raw.plain);
    const matMulMs = (f: typeof fast) => GROUPS.filter((g) => g.startsWith('matMul') || g.startsWith('conv')).reduce((a, g) => a + f.groups[g], 0);
    const matMulFlops = (f: typeof fast) => GROUPS.filter((g) => g.startsWith('matMul') || g.startsWith('conv')).reduce((a, g) => a + f.flops[g], 0);
    console.log(`\n${m.label}: ${round(fast.stepMs, 1)} ms/step with the fast kernels, ${round(plain.stepMs, 1)} without (CPU ${round(fast.cpuMs, 1)} / ${round(plain.cpuMs, 1)} ms); ${steps} steps x ${rounds} rounds`);
    console.table(Object.fromEntries(GROUPS.map((g) => [g, {
      'fast ms': round(fast.groups[g], 2),
      'fast %': round((100 * fast.groups[g]) / fast.stepMs, 1),
      'fast cpu ms': round(fast.cpuGroups[g], 2),
      'plain ms': round(plain.groups[g], 2),
      'plain %': round((100 * plain.groups[g]) / plain.stepMs, 1),
      'plain cpu ms': round(plain.cpuGroups[g], 2),
      calls: round(fast.calls[g], 1),
    }])));
    results[m.name] = {
      label: m.label,
      stepsPerRound: steps,
      rounds,
      stepGFlop: round(m.stepFlops / 1e9, 3),
      fast: { ...roundAll(fast), effectiveGFlops: round(m.stepFlops / fast.stepMs / 1e6, 2), productKernelGFlops: round(matMulFlops(fast) / matMulMs(fast) / 1e6, 2) },
      plain: { ...roundAll(plain), effectiveGFlops: round(m.stepFlops / plain.stepMs / 1e6, 2), productKernelGFlops: round(matMulFlops(plain) / matMulMs(plain) / 1e6, 2) },
    };
  }
  writeResults('profile', {
    command: `npm run bench -- profile${args.length ? ` ${args.join(' ')}` : ''}`,
    backend: `wasm, ${threads} thread${threads > 1 ? 's' : ''}`,
    notes: [
      'per model: medians over rounds of ms per step by group; "fast" = with the wasm fast kernels (installWasmFastKernels), "plain" = the training shim alone; rounds alternate the two',
      'kernel times are self times, wall clock (groups) and CPU time of the process (cpuGroups: on a busy machine it is inflated less); "outside kernels" = step time minus kernels and host reads',
      'effectiveGFlops = the multiply-adds x 2 a step needs / step time; productKernelGFlops = FLOPs run inside matMul and conv kernels (without the fast kernels including the first conv layer input gradient, which the fused conv2d of tfjs computes although nothing reads it) / their time',
    ],
    models: results,
  }, []);
}

function roundAll<T extends { stepMs: number; cpuMs: number; stepMsSpread: number[]; groups: Record<string, number>; cpuGroups: Record<string, number>; calls: Record<string, number>; flops: Record<string, number> }>(f: T) {
  const r = (o: Record<string, number>, d = 3) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v, d)]));
  return { ...f, stepMs: round(f.stepMs, 2), cpuMs: round(f.cpuMs, 2), stepMsSpread: f.stepMsSpread.map((v) => round(v, 2)), groups: r(f.groups), cpuGroups: r(f.cpuGroups), calls: r(f.calls, 2), flops: r(f.flops, 0) };
}
