import * as tf from '@tensorflow/tfjs';
import { ChainStepper, vectorJacobianProduct, type NamedTensors, type Segment, type SegmentContext, type StepTransform } from '@tapfit/core';

// What each segment costs per micro-batch (forward, backward, update), measured to balance
// pipeline stages (partition.ts splits by these costs).

/** Untimed rounds before the timed ones: the first calls of each kernel and of the engine's code are several times slower. */
const WARM_ROUNDS = 3;

/**
 * Waits until `ts` are computed by reading back one value of each: a backend that queues
 * kernels (webgpu) has run them then, and the read costs microseconds. Reading whole
 * tensors back (as the balancer did until 2026-12-02) timed the copy instead: the MNIST
 * CNN's dense layer has a weight gradient of 200 k floats, and copying it out cost more
 * than the layer's backward at batch 1, which put the cut in the wrong place.
 */
function settle(ts: readonly (tf.Tensor | null | undefined)[]): void {
  for (const t of ts) {
    if (!t || t.size === 0) continue;
    const one = tf.tidy(() => t.reshape([-1]).slice(0, 1));
    one.dataSync();
    one.dispose();
  }
}

/** Milliseconds `run` takes, its tensors freed. */
function timed(run: () => void): number {
  const t0 = performance.now();
  tf.tidy(run);
  return performance.now() - t0;
}

/**
 * Each segment's inputs on `x` (inference forward) and a head gradient of ones for its
 * outputs, kept until `use` returns. The timings below run in rounds over all segments, so
 * that a slow moment of the machine (another job, a garbage collection) lands on every
 * segment alike instead of on the one being timed, and report each segment's median.
 */
function withSegmentInputs<T>(segments: readonly Segment[], x: tf.Tensor, use: (inputs: tf.Tensor[][], heads: tf.Tensor[][]) => T): T {
  const ctx: SegmentContext = { training: false, recomputing: false, step: 0 };
  const inputs: tf.Tensor[][] = [];
  const heads: tf.Tensor[][] = [];
  const kept: tf.Tensor[] = [];
  try {
    let xs = [x];
    for (const s of segments) {
      inputs.push(xs);
      xs = tf.tidy(() => s.forward(xs, ctx));
      heads.push(xs.map((y) => tf.onesLike(y)));
      kept.push(...xs, ...heads[heads.length - 1]);
    }
    return use(inputs, heads);
  } finally {
    tf.dispose(kept);
  }
}

/**
 * Median forward time of each segment on `x` in milliseconds (inference context, so no
 * statistics advance), for balancing stages: `repeats` timed rounds over all segments.
 */
export function measureSegmentTimes(segments: readonly Segment[], x: tf.Tensor, repeats = 9): number[] {
  return measureSegmentCosts(segments, x, repeats, { backward: false }).forward;
}

/**
 * Median forward and backward (VJP w.r.t. input and parameters) time of each segment on
 * `x` in milliseconds, inference context for the forward, recomputing for the backward,
 * so no statistics advance. For balancing stages by what they really run: `repeats` timed
 * rounds over all segments after WARM_ROUNDS untimed ones (in a fresh process the first
 * convolution took 1.85 ms cold against 0.5-0.6 ms after, on the MNIST CNN at batch 1).
 * With `backward: false`, forwards only (`backward` is then empty).
 */
export function measureSegmentCosts(segments: readonly Segment[], x: tf.Tensor, repeats = 15, what: { backward?: boolean } = {}): { forward: number[]; backward: number[] } {
  const inference: SegmentContext = { training: false, recomputing: false, step: 0 };
  const recompute: SegmentContext = { training: true, recomputing: true, step: 0 };
  const withBackward = what.backward ?? true;
  return withSegmentInputs(segments, x, (inputs, heads) => {
    const forward: number[][] = segments.map(() => []);
    const backward: number[][] = segments.map(() => []);
    for (let r = -WARM_ROUNDS; r < repeats; r++) {
      segments.forEach((s, i) => {
        const f = timed(() => settle(s.forward(inputs[i], inference)));
        const b = withBackward ? timed(() => settle(vectorJacobianProduct(() => s.forward(inputs[i], recompute), [...inputs[i], ...s.params.filter((v) => v.trainable)], heads[i]))) : 0;
        if (r < 0) return;
        forward[i].push(f);
        backward[i].push(b);
      });
    }
    return { forward: forward.map(median), backward: withBackward ? backward.map(median) : [] };
  });
}

/** One segment's update probe: copies of its parameters, zero gradients, an update chain and the times. */
interface UpdateProbe {
  copies: tf.Variable[];
  grads: NamedTensors;
  stepper?: ChainStepper;
  times: number[];
}

/**
 * Median time of one optimizer update of each segment's trainable parameters in
 * milliseconds, applied to copies (the model's weights do not move), in rounds over all
 * segments like the costs above. Part of what a stage runs per micro-batch: at batch 1 a
 * large dense layer's update costs about as much as its forward and backward, so leaving
 * it out misplaces the cut.
 */
export function measureUpdateCosts(segments: readonly Segment[], members: readonly StepTransform[], repeats = 15): number[] {
  const parts: (UpdateProbe | undefined)[] = [];
  try {
    for (const s of segments) {
      const params = s.params.filter((v) => v.trainable);
      if (params.length === 0) {
        parts.push(undefined);
        continue;
      }
      // Each piece is held before the next is made, so a failure frees what was made.
      const part: UpdateProbe = { copies: [], grads: {}, times: [] };
      parts.push(part);
      for (const v of params) part.copies.push(tf.tidy(() => tf.variable(v.clone(), true))); // the tidy frees the clone; the copy keeps its data
      part.grads = tf.tidy(() => Object.fromEntries(part.copies.map((v) => [v.name, tf.zerosLike(v)])));
      part.stepper = new ChainStepper(members, Object.fromEntries(part.copies.map((v) => [v.name, v])));
    }
    for (let r = -WARM_ROUNDS; r < repeats; r++) {
      for (const p of parts) {
        if (!p) continue;
        const t0 = performance.now();
        p.stepper!.apply(p.grads, r + WARM_ROUNDS);
        settle(p.copies);
        if (r >= 0) p.times.push(performance.now() - t0);
      }
    }
    return parts.map((p) => (p ? median(p.times) : 0));
  } finally {
    for (const p of parts) {
      if (!p) continue;
      p.stepper?.dispose();
      tf.dispose([...p.copies, ...Object.values(p.grads)]);
    }
  }
}

/** The middle value of `xs` (the upper one of an even count). */
function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}
