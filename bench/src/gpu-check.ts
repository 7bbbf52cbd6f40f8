#!/usr/bin/env node
/**
 * `npm run gpu-check`: is training on this machine's GPU correct and fast? Selects
 * tfjs-node-gpu when it is installed, WebGPU otherwise, prints the adapter, then in one
 * run, GPU against single-thread wasm: matMul GFLOP/s (1024, 2048, 4096), MLP
 * 784-2048-2048-10 (batch 1024, SGD) and CNN (batch 64) training steps per second, and
 * one training step of every plugin of examples' PLUGIN_MATRIX against cpu (first-step
 * gradients, rtol 1e-3). Writes bench/results/gpu-check.json. 1.5 to 3.5 minutes on a
 * software adapter (fewer repetitions there), 49-54 s on an NVIDIA H200; a deadline on adding
 * repetitions keeps it under 5. Exit code 1 when a target that applies is not met, 2
 * when there is no GPU.
 */
import { execFileSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { formatAdapter, probeWebgpuAdapter, releaseDroppedGpuObjects, selectBackend, type BackendName, type BackendSelection } from '@tapfit/core';
import { gradientMismatch, largestGradientError, trainOnBackend } from '@tapfit/core/testing';
import { PLUGIN_MATRIX } from '@tapfit/examples';
import { median, notApplicable, round, target, writeResults, type Target } from './results';
import { layersCnnStep, rawMlpStep } from './lib/raw-steps';

const started = performance.now();
/** Stop adding repetitions after this; measured workloads keep at least one timed step. */
const DEADLINE_MS = 200_000;
const RTOL = 1e-3;

interface Workload {
  setup(): { step: () => unknown; dispose: () => void };
  /** Useful work per step, for GFLOP/s (0: report steps/s only). */
  flops: number;
}

interface Timing {
  msPerStep: number;
  reps: number;
  samples: number[];
  /** The untimed warm-up steps' times, for the compilation cost they hide. */
  warmUpMs: number[];
}

/** `warmUp` untimed steps (shader compilation, XNNPACK packing), then up to `reps` timed ones within `budgetMs`. */
async function measure(w: Workload, o: { reps: number; budgetMs: number; warmUp: number }): Promise<Timing> {
  const { reps, budgetMs } = o;
  const s = w.setup();
  const timed = async (): Promise<number> => {
    const t0 = performance.now();
    await s.step();
    const ms = performance.now() - t0;
    await releaseDroppedGpuObjects();
    return ms;
  };
  try {
    const warmUpMs: number[] = [];
    for (let i = 0; i < o.warmUp; i++) warmUpMs.push(round(await timed(), 2));
    const samples: number[] = [];
    const until = Math.min(performance.now() + budgetMs, started + DEADLINE_MS);
    while (samples.length < reps && (samples.length === 0 || performance.now() < until)) samples.push(await timed());
    return { msPerStep: round(median(samples), 3), reps: samples.length, samples: samples.map((x) => round(x, 2)), warmUpMs };
  } finally {
    s.dispose();
  }
}

function matMul(n: number): Workload {
  return {
    flops: 2 * n ** 3,
    setup() {
      const a = tf.randomNormal([n, n], 0, 1, 'float32', 1);
      const b = tf.randomNormal([n, n], 0, 1, 'float32', 2);
      // Reading a sum forces completion without timing a 64 MiB read-back.
      return { step: () => tf.tidy(() => void tf.sum(tf.matMul(a, b)).dataSync()), dispose: () => tf.dispose([a, b]) };
    },
  };
}

/** MLP 784-2048-2048-10, batch 1024, softmax cross-entropy, plain SGD. */
function mlp(): Workload {
  return { flops: 0, setup: () => rawMlpStep([784, 2048, 2048, 10], 1024) };
}

/** tfjs-layers conv16-pool-conv32-pool-dense128-dense10 on 28x28x1, batch 64, SGD. */
function cnn(): Workload {
  return { flops: 0, setup: () => layersCnnStep(64) };
}

/** tfjs-node-gpu when installed (CUDA), else WebGPU; null with the reason when neither works here. */
async function selectGpu(): Promise<{ selection: BackendSelection; hardware: boolean; adapter: string } | { none: string }> {
  let nodeGpu = false;
  try {
    require.resolve('@tensorflow/tfjs-node-gpu', { paths: [process.cwd(), __dirname] });
    nodeGpu = true;
  } catch {
    // not installed: WebGPU
  }
  if (nodeGpu) {
    const selection = await selectBackend('tensorflow');
    const onGpu = (tf.backend() as unknown as { isUsingGpuDevice?: boolean }).isUsingGpuDevice === true;
    return { selection, hardware: onGpu, adapter: `tfjs-node-gpu (${onGpu ? 'a CUDA device is in use' : 'no CUDA device in use: running on the CPU'})` };
  }
  const probe = await probeWebgpuAdapter();
  if (!probe.adapter) return { none: `no GPU backend: tfjs-node-gpu is not installed and WebGPU has ${probe.why}` };
  const selection = await selectBackend('webgpu');
  return { selection, hardware: !probe.adapter.software, adapter: formatAdapter(probe.adapter) };
}

/** The card as NVIDIA's driver names it ('NVIDIA H200, 580.159.04, 143771 MiB'), where nvidia-smi exists; WebGPU names it less clearly. */
function nvidiaCard(): string | null {
  try {
    return execFileSync('nvidia-smi', ['--query-gpu=name,driver_version,memory.total', '--format=csv,noheader'], { encoding: 'utf8', timeout: 10_000, stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return null;
  }
}

async function main(): Promise<void> {
  const gpu = await selectGpu();
  if ('none' in gpu) {
    console.error(`gpu-check: ${gpu.none}. Nothing measured; bench/results/gpu-check.json is left as it was. See the @tapfit/core README, "Getting a GPU".`);
    process.exit(2);
  }
  const gpuName = gpu.selection.name;
  const card = nvidiaCard();
  console.log(`GPU: ${gpu.adapter}${card ? `; nvidia-smi: ${card}` : ''}`);
  const software = !gpu.hardware;
  // A software adapter takes ~50 s for one 4096 product and ~15 s for one MLP step: fewer
  // repetitions, and the 4096 product is timed without a warm-up (its shader was compiled at
  // 2048; compilation is ~1 % of that step), so the whole check stays well under 5 minutes.
  const reps = software ? 2 : 5;
  const budgetMs = software ? 15_000 : 20_000;

  // The targets compare with ONE wasm thread: 'auto' would take up to 4 on a GPU machine's many cores.
  let wasmThreads = 0;
  // On an H200 the CNN's first steps took 0.75 s, then 67-78 ms for three or four, then 22-28
  // ms (pipelines compiled per new shape): after one warm-up step the median of five landed on
  // the slow side in one of two runs. A hardware GPU gets five (cheap there); wasm and a
  // software adapter one.
  const gpuWarmUp = software ? 1 : 5;
  const run = async (backend: BackendName, w: Workload, warmUp = true): Promise<Timing> => {
    const chosen = await selectBackend(backend, backend === 'wasm' ? { log: false, threads: 1 } : { log: false });
    if (backend === 'wasm') wasmThreads = chosen.threads;
    return measure(w, { reps, budgetMs, warmUp: !warmUp ? 0 : backend === gpuName ? gpuWarmUp : 1 });
  };
  const matMulGFlops: Record<string, Record<string, number>> = { [gpuName]: {}, wasm: {} };
  const matMulTimings: Record<string, Record<string, Timing>> = { [gpuName]: {}, wasm: {} };
  for (const n of [1024, 2048, 4096]) {
    for (const backend of [gpuName, 'wasm'] as BackendName[]) {
      const t = await run(backend, matMul(n), !(software && backend === gpuName && n === 4096));
      matMulTimings[backend][n] = t;
      matMulGFlops[backend][n] = round((2 * n ** 3) / (t.msPerStep / 1000) / 1e9, 2);
      console.log(`matMul ${n} on ${backend}: ${matMulGFlops[backend][n]} GFLOP/s (${t.reps} timed)`);
    }
  }
  const steps: Record<'mlp' | 'cnn', Record<string, Timing & { stepsPerSecond: number }>> = { mlp: {}, cnn: {} };
  for (const [name, make] of [['mlp', mlp], ['cnn', cnn]] as const) {
    for (const backend of [gpuName, 'wasm'] as BackendName[]) {
      const t = await run(backend, make());
      steps[name][backend] = { ...t, stepsPerSecond: round(1000 / t.msPerStep, 3) };
      console.log(`${name} training on ${backend}: ${steps[name][backend].stepsPerSecond} steps/s (${t.reps} timed)`);
    }
  }

  const plugins: Array<Record<string, unknown>> = [];
  const pluginTargets: Target[] = [];
  for (const entry of PLUGIN_MATRIX) {
    try {
      const onGpu = await trainOnBackend(entry, gpuName, 1);
      const onCpu = await trainOnBackend(entry, 'cpu', 1);
      const error = largestGradientError(onGpu, onCpu);
      const mismatch = gradientMismatch(onGpu, onCpu, RTOL);
      plugins.push({ name: entry.name, gpuMs: round(onGpu.ms, 1), cpuMs: round(onCpu.ms, 1), loss: round(onGpu.losses[0], 6), cpuLoss: round(onCpu.losses[0], 6), maxRelativeGradientError: error, mismatch });
      pluginTargets.push(target(`plugin ${entry.name}: one ${gpuName} training step, first-step gradients against cpu (max relative error, rtol ${RTOL})`, error, 'max', RTOL));
      console.log(`plugin ${entry.name}: one step on ${gpuName} ${round(onGpu.ms, 1)} ms, gradients vs cpu ${error.toExponential(2)}${mismatch ? ` MISMATCH: ${mismatch}` : ''}`);
    } catch (err) {
      const message = (err as Error).message.split('\n')[0];
      plugins.push({ name: entry.name, error: message });
      pluginTargets.push(target(`plugin ${entry.name}: one ${gpuName} training step, first-step gradients against cpu (max relative error, rtol ${RTOL})`, Number.NaN, 'max', RTOL));
      console.log(`plugin ${entry.name}: FAILED on ${gpuName}: ${message}`);
    }
  }
  await selectBackend(gpuName, { log: false });

  const matMulRatio = round(matMulGFlops[gpuName][4096] / matMulGFlops.wasm[4096], 3);
  const mlpRatio = round(steps.mlp[gpuName].stepsPerSecond / steps.mlp.wasm.stepsPerSecond, 3);
  const speed = (name: string, measured: number, bound: number): Target =>
    software ? notApplicable(name, measured, 'min', bound, 'software adapter: speed not a target') : target(name, measured, 'min', bound);
  const targets: Target[] = [
    speed('matMul 4096 GFLOP/s, GPU / single-thread wasm (same run)', matMulRatio, 10),
    speed('MLP 784-2048-2048-10 batch 1024 training steps/s, GPU / single-thread wasm (same run)', mlpRatio, 5),
    ...pluginTargets,
  ];
  const seconds = round((performance.now() - started) / 1000, 1);
  writeResults('gpu-check', {
    gpu: {
      backend: gpuName,
      package: gpu.selection.package,
      adapter: gpu.selection.adapter ?? null,
      name: gpu.adapter,
      nvidiaSmi: card,
      software,
      reason: gpu.selection.reason,
    },
    wasm: { threads: wasmThreads },
    warmUpSteps: { [gpuName]: gpuWarmUp, wasm: 1 },
    matMulGFlops,
    matMulTimings,
    mlp: { layers: '784-2048-2048-10', batch: 1024, optimizer: 'sgd', ...steps.mlp },
    cnn: { layers: 'conv16-pool-conv32-pool-dense128-dense10', input: '28x28x1', batch: 64, optimizer: 'sgd', ...steps.cnn },
    plugins,
    seconds,
  }, targets, 'npm run gpu-check');
  console.log(`gpu-check took ${seconds} s`);
  if (targets.some((t) => t.met === false)) process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
