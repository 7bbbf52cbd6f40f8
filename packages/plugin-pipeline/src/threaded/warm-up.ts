import * as tf from '@tensorflow/tfjs';
import { ChainStepper, fromLayersModel, noiseKey, type LossFn, type NamedTensors, type StepTransform } from '@tapfit/core';
import { runSegments, stageBackward, withWeights } from '../stage-math';
import { WeightHistory } from '../weight-history';
import type { StageInit } from './protocol';

/** The longest a stage warms up by default (`warmUpMs`; a pass that starts before it runs to its end). */
export const DEFAULT_WARM_UP_MS = 1500;

/**
 * A new worker runs the engine, the tape and the update chain as cold code: V8 compiles
 * them to optimised code only after it has seen them run many times, so a fresh stage's
 * first few hundred samples took about twice the CPU time of later ones (measured: 3.9 ms
 * against 2.2 ms a sample per stage). This runs `passes` of the stage's per-sample work
 * during `start` instead: a forward at the weight history's version, the backward with a
 * recomputed forward, the update and the history's next entry; on zeros, on a throwaway
 * copy of the stage's layers with a throwaway optimizer state. The stage's own weights,
 * optimizer state and layer state (a BatchNorm's moving statistics), the dropout draws
 * (keyed, no generator state) and the setupModule's hooks are not touched. At most
 * `init.warmUpMs` (1.5 s by default): a stage whose sample takes long gains little from warm
 * code (its kernels dominate) and must not hold `start` for minutes. Returns the passes run.
 */
export function warmUpStage(copy: tf.LayersModel, init: StageInit, members: readonly StepTransform[], loss: LossFn, passes: number): number {
  const segments = fromLayersModel(copy).segments.slice(init.start, init.end);
  const trainable = new Set(copy.trainableWeights.map((w) => w.read() as tf.Variable));
  const variables = [...new Set(segments.flatMap((s) => s.params))].filter((v) => trainable.has(v));
  const stepper = new ChainStepper(members, Object.fromEntries(variables.map((v) => [v.name, v])));
  const history = init.delay > 0 ? new WeightHistory(init.stage, init.delay, variables, init.prediction) : undefined;
  const velocity = (v: tf.Variable) => (stepper.state.momentum as { velocity?: NamedTensors } | undefined)?.velocity?.[v.name];
  const record = (k: number) => history?.record(k, { velocity, stepAhead: (d) => d * init.optimizer.lr });
  const x = tf.zeros([init.microBatch, ...init.inputShape]);
  const last = init.stage === init.stages;
  // The last stage's loss on zero labels shaped like its output; a loss that wants other labels warms through the VJP instead.
  let lossWarms = last;
  const t0 = performance.now();
  let t = 0;
  try {
    record(0);
    for (; t < passes && performance.now() - t0 < init.warmUpMs; t++) {
      const ctx = { training: true, recomputing: false, step: t, noiseKey: noiseKey(init.seed, t) };
      const forward = () => tf.tidy(() => runSegments(segments, [x], ctx)[0]);
      const y = history ? withWeights(variables, history.forwardWeights(t), forward) : forward();
      y.dataSync();
      const backward = (head: Parameters<typeof stageBackward>[5]) => stageBackward(segments, variables, [x], { ...ctx, recomputing: !!history }, init.stage > 1, head);
      let out: ReturnType<typeof stageBackward> | undefined;
      if (lossWarms) {
        const labels = tf.zerosLike(y);
        try {
          out = backward({ loss, y: labels });
          out.value?.dataSync();
        } catch {
          lossWarms = false;
        } finally {
          labels.dispose();
        }
      }
      if (!out) {
        const dy = tf.zerosLike(y);
        out = backward({ dys: [dy] });
        dy.dispose();
      }
      y.dispose();
      const grads: NamedTensors = {};
      variables.forEach((v, k) => out!.grads[k] && (grads[v.name] = out!.grads[k]!));
      stepper.apply(grads, t);
      out.dxs[0]?.dataSync();
      record(t + 1);
      history?.release(t);
      tf.dispose([...Object.values(grads), out.dxs[0] ?? [], out.value ?? []]);
    }
  } finally {
    x.dispose();
    history?.dispose();
    stepper.dispose();
  }
  return t;
}
