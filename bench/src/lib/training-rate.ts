import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { installWasmFastKernels, selectBackend, sgd, SilentLogger, Trainer, uninstallWasmFastKernels } from '@tapfit/core';
import { median, round } from '../results';
import { fixedBatch, STEP_MODELS, type StepModel } from './step-models';

/** What one training-rate child process measured. */
export interface TrainingRates {
  threads: number;
  loadAtStart: number;
  /** matMul 1024 x 1024 (the same operands each call, so XNNPACK's packed copy is reused): the backend's product rate. */
  matMul1024GFlops: number;
  /**
   * Trainer steps per second with the fast kernels and with the training shim alone;
   * `steady`: with the fast kernels after STEADY_WARMUP_MS more of training (reported, not
   * a target: the first seconds of a 2-thread process ran slower than later ones).
   */
  models: Record<string, { fast: number; plain: number; steady: number }>;
}

/** Training before the steady-state rate is timed, and how long it is timed (scale 1). */
const STEADY_WARMUP_MS = 1500;
const STEADY_MS = 1000;

/** Steps timed per measurement at scale 1: about half a second each on a quiet machine. */
const STEPS: Record<string, number> = { mlp: 20, cnn: 10, 'mlp-big': 3 };

/**
 * In a fresh process with `threads` wasm threads: the product rate, then every model's
 * Trainer steps per second with the fast kernels on and off, measured in the order
 * on, off, off, on (so a drift inside the process hits both alike); medians.
 */
export async function measureTrainingRates(threads: number, scale: number): Promise<TrainingRates> {
  const loadAtStart = os.loadavg()[0];
  await selectBackend('wasm', { threads, log: false });
  const models: TrainingRates['models'] = {};
  for (const m of STEP_MODELS) {
    const steps = Math.max(2, Math.round(STEPS[m.name] * scale));
    const rate = await stepRate(m);
    const fast: number[] = [];
    const plain: number[] = [];
    for (const on of [true, false, false, true]) {
      if (on) installWasmFastKernels();
      else uninstallWasmFastKernels();
      (on ? fast : plain).push(rate(steps));
    }
    installWasmFastKernels();
    const steady = rate.steady(STEADY_WARMUP_MS * scale, STEADY_MS * scale);
    rate.dispose();
    models[m.name] = { fast: round(median(fast), 3), plain: round(median(plain), 3), steady: round(steady, 3) };
  }
  return { threads, loadAtStart: round(loadAtStart, 2), matMul1024GFlops: round(matMulRate(1024, 5), 2), models };
}

/** A Trainer (SGD) on a fixed batch: rate(n) runs n steps after one warm-up step and returns steps per second. */
async function stepRate(m: StepModel): Promise<((n: number) => number) & { steady(warmupMs: number, timedMs: number): number; dispose(): void }> {
  const trainer = new Trainer({ model: m.build(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.01 }), logger: new SilentLogger() });
  await trainer.setup();
  const { x, y } = fixedBatch(m);
  let step = 0;
  const one = () => {
    const r = trainer.trainStep({ x, y }, { step, epoch: 0, batch: step });
    step++;
    r.loss.dispose();
  };
  const rate = (n: number) => {
    one();
    const t0 = performance.now();
    for (let i = 0; i < n; i++) one();
    return (1000 * n) / (performance.now() - t0);
  };
  /** Steps for warmupMs (3 at least), then steps/s over the next timedMs (3 steps at least). */
  const steady = (warmupMs: number, timedMs: number) => {
    for (let i = 0, t0 = performance.now(); i < 3 || performance.now() - t0 < warmupMs; i++) one();
    let n = 0;
    const t0 = performance.now();
    while (n < 3 || performance.now() - t0 < timedMs) {
      one();
      n++;
    }
    return (1000 * n) / (performance.now() - t0);
  };
  return Object.assign(rate, {
    steady,
    dispose: () => {
      trainer.dispose();
      tf.dispose([x, y]);
    },
  });
}

/** GFLOP/s of an n x n product on the same operands, median of `reps` after a warm-up. */
export function matMulRate(n: number, reps: number): number {
  const a = tf.randomNormal([n, n]);
  const b = tf.randomNormal([n, n]);
  const once = () => {
    const t0 = performance.now();
    tf.tidy(() => void tf.matMul(a, b).dataSync());
    return performance.now() - t0;
  };
  once();
  const ms = median(Array.from({ length: reps }, once));
  tf.dispose([a, b]);
  return (2 * n ** 3) / ms / 1e6;
}
