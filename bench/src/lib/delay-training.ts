import * as tf from '@tensorflow/tfjs';
import { cosineDecay, linearWarmup, sgd, SilentLogger, Trainer, type DataSource, type TapfitPlugin } from '@tapfit/core';
import { tapfitPlugin as brakes } from '@tapfit/plugin-brakes';
import { pipeline } from '@tapfit/plugin-pipeline';

/**
 * Training under a constant gradient delay D with one of the remedies, every method on
 * the delay model of docs/techniques.md §4.3: update k applies the gradient of batch k
 * computed on the weights after update max(0, k - D), with the learning rate of update k.
 *
 * Two routes implement it:
 * - 'brakes': plugin-brakes' delayedGradients (a FIFO in the `backward` hook). The first
 *   D batches only fill the queue (no update), so update k happens at batch k + D and
 *   applies batch k's gradient, computed when the weights were w_{max(0, k - D)}; the
 *   optimizer's step count (and the schedule) start at the first applied update.
 * - 'pipeline': plugin-pipeline's one-stage trainer, `pipeline({ stages: 1, extraDelay: D,
 *   weightStashing: true })`: update k runs batch k forward and backward on the weights
 *   recorded at update max(0, k - D) (or their prediction, LWP) and applies the gradient
 *   at once; nothing is skipped.
 * Fed the same batch sequence, both apply the same updates; the brakes route needs D more
 * batches for the same number of updates (their gradients are still queued at the end).
 * `runDelayed` always runs until `updates` updates are applied.
 */
export type TrainingMethod =
  | { kind: 'momentum' }
  /** Adaptive Braking (plugin-brakes), per-tensor cosine unless 'global'. */
  | { kind: 'ab'; rho: number; granularity?: 'tensor' | 'global' }
  /** Spike Compensation (plugin-pipeline, compensation 'sc'). */
  | { kind: 'sc' }
  /** Linear Weight Prediction, velocity form (plugin-pipeline, prediction 'lwp-velocity'). */
  | { kind: 'lwp' }
  | { kind: 'sc+lwp' };

export type DelayRoute = 'brakes' | 'pipeline';

export function trainingMethodName(m: TrainingMethod): string {
  switch (m.kind) {
    case 'ab':
      return `AB rho=${m.rho}${m.granularity === 'global' ? ' global' : ''}`;
    case 'sc+lwp':
      return 'SC + LWP';
    default:
      return m.kind === 'momentum' ? 'momentum' : m.kind.toUpperCase();
  }
}

/** The route a method takes: AB through plugin-brakes, SC and LWP through plugin-pipeline; momentum either. */
export function routeOf(m: TrainingMethod, momentumRoute: DelayRoute = 'brakes'): DelayRoute {
  if (m.kind === 'ab') return 'brakes';
  if (m.kind === 'momentum') return momentumRoute;
  return 'pipeline';
}

export interface DelayedRunOptions {
  /** A freshly initialised model; the run trains it in place. */
  model: tf.LayersModel;
  method: TrainingMethod;
  delay: number;
  /** Peak learning rate: linear warm-up from 0 over `warmup` updates, then cosine decay to 0 at `updates`. */
  lr: number;
  momentum: number;
  warmup: number;
  updates: number;
  batchSize: number;
  /** Seed of the data order (epoch e is permutation(seed, e)). */
  seed: number;
  data: DataSource;
  /** Route for plain momentum (default 'brakes'); AB always takes 'brakes', SC and LWP 'pipeline'. */
  momentumRoute?: DelayRoute;
  /** Every this many batches the loss is read; a non-finite one, or one above `maxLoss`, ends the run as diverged. Default 100; 0: never. */
  checkEvery?: number;
  /** Default Infinity. */
  maxLoss?: number;
}

export interface DelayedRun {
  trainer: Trainer;
  updates: number;
  batches: number;
  /** The loss became non-finite (or exceeded `maxLoss`) and the run was stopped early. */
  diverged: boolean;
  /** Mean training loss over the last (up to) 10 checks. */
  lastLoss: number;
  seconds: number;
  /** Frees the trainer and its plugin (not the model). */
  dispose(): void;
}

/** The schedule every run uses, whatever the method and delay. */
export function warmupCosine(lr: number, warmup: number, updates: number) {
  return linearWarmup({ warmupSteps: warmup, then: cosineDecay({ initial: lr, decaySteps: Math.max(1, updates - warmup) }) });
}

function pluginFor(method: TrainingMethod, delay: number, route: DelayRoute): TapfitPlugin & { dispose(): void } {
  if (route === 'brakes') {
    if (method.kind === 'ab') return brakes({ delay, rho: method.rho, granularity: method.granularity ?? 'tensor' });
    return brakes({ delay, braking: false });
  }
  const compensation = method.kind === 'sc' || method.kind === 'sc+lwp' ? 'sc' : 'none';
  const prediction = method.kind === 'lwp' || method.kind === 'sc+lwp' ? 'lwp-velocity' : 'none';
  return pipeline({ stages: 1, extraDelay: delay, weightStashing: true, compensation, prediction });
}

/** Trains `o.model` with `o.method` under delay `o.delay` until `o.updates` updates are applied (or it diverges). */
export async function runDelayed(o: DelayedRunOptions): Promise<DelayedRun> {
  const route = routeOf(o.method, o.momentumRoute);
  const plugin = pluginFor(o.method, o.delay, route);
  const trainer = new Trainer({
    model: o.model,
    loss: 'softmaxCrossEntropy',
    optimizer: sgd({ lr: warmupCosine(o.lr, o.warmup, o.updates), momentum: o.momentum }),
    plugins: [plugin],
    logger: new SilentLogger(),
    seed: o.seed,
    nonFinite: 'off', // no read-back per step; the loop below checks every `checkEvery` batches
  });
  await trainer.setup();
  const checkEvery = o.checkEvery ?? 100;
  const losses: number[] = [];
  let batches = 0;
  let diverged = false;
  const t0 = performance.now();
  for (let epoch = 0; trainer.step < o.updates && !diverged; epoch++) {
    const it = o.data.batches({ batchSize: o.batchSize, shuffle: true, seed: o.seed, epoch }) as Iterator<{ x: tf.Tensor; y: tf.Tensor }>;
    for (let r = it.next(), batch = 0; !r.done; r = it.next(), batch++) {
      const { loss } = trainer.trainStep(r.value, { epoch, batch, step: trainer.step });
      tf.dispose([r.value.x, r.value.y]); // the source's batch: trainStep leaves it to us
      batches++;
      if (checkEvery > 0 && batches % checkEvery === 0) {
        const value = loss.dataSync()[0];
        losses.push(value);
        diverged = !(value <= (o.maxLoss ?? Infinity)); // (NaN too)
      }
      loss.dispose();
      if (diverged || trainer.step >= o.updates) {
        it.return?.();
        break;
      }
    }
  }
  const recent = losses.slice(-10);
  return {
    trainer,
    updates: trainer.step,
    batches,
    diverged,
    lastLoss: recent.length ? recent.reduce((a, b) => a + b, 0) / recent.length : NaN,
    seconds: (performance.now() - t0) / 1000,
    dispose: () => trainer.dispose(), // (disposes its plugins too)
  };
}
