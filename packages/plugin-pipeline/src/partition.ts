import * as tf from '@tensorflow/tfjs';
import { ChainStepper, ErrorCodes, TapfitError, vectorJacobianProduct, type Segment, type SegmentContext, type StepTransform } from '@tapfit/core';
import { stageDelays } from './delays';

/** One pipeline stage: a run of consecutive segments and its delay. */
export interface StageSpec {
  /** 1 at the input, S at the loss. */
  readonly index: number;
  /** Segment indices [start, end). */
  readonly start: number;
  readonly end: number;
  readonly segments: readonly string[];
  /** D_s = 2 (S - s) + extraDelay. */
  readonly delay: number;
}

/**
 * Refuses `stages` stages for a model its adapter kept whole (a tfjs-layers chain whose
 * layers read a mask runs as one segment), naming why: "split the model into more
 * segments" is no help there.
 */
export function checkSplittable(stages: number, segmentCount: number, unsplitReason: string | undefined): void {
  if (unsplitReason === undefined || stages <= segmentCount) return;
  throw new TapfitError(
    ErrorCodes.CONFIG,
    `pipeline: ${stages} stages asked for, but the model is one segment: ${unsplitReason}. Train this model without the pipeline (a stage boundary would cut the mask off the layers that read it).`,
  );
}

/**
 * Splits a chain of segments into stages at explicit boundaries: `boundaries` names the
 * first segment of every stage after the first, in model order.
 */
export function partitionAt(segmentNames: readonly string[], boundaries: readonly string[], extraDelay = 0): StageSpec[] {
  const starts = [0];
  for (const name of boundaries) {
    const at = segmentNames.indexOf(name);
    if (at < 0) {
      throw new TapfitError(ErrorCodes.CONFIG, `pipeline: boundary '${name}' (start of stage ${starts.length + 1}) is not a segment of the model; segments: ${segmentNames.join(', ')}.`);
    }
    if (at <= starts[starts.length - 1]) {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `pipeline: boundary '${name}' (start of stage ${starts.length + 1}) does not come after the start of stage ${starts.length} ('${segmentNames[starts[starts.length - 1]]}'); list boundaries in model order, each after the previous.`,
      );
    }
    starts.push(at);
  }
  return stagesFromStarts(segmentNames, starts, extraDelay);
}

/**
 * Splits into `stages` stages so that the largest stage cost (sum of `costs`) is as small
 * as possible; `lastCosts` (default `costs`) are the segments' costs in the last stage.
 */
export function partitionBalanced(segmentNames: readonly string[], costs: readonly number[], stages: number, extraDelay = 0, lastCosts?: readonly number[]): StageSpec[] {
  stageDelays(stages, extraDelay); // validates both
  if (stages > segmentNames.length) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `pipeline: ${stages} stages asked for, but the model has only ${segmentNames.length} segments (stage ${segmentNames.length + 1} would be empty); use at most ${segmentNames.length} stages or split the model into more segments.`,
    );
  }
  return stagesFromStarts(segmentNames, balancedStarts(costs, stages, lastCosts), extraDelay);
}

/**
 * The start index of each stage in the contiguous split of `costs` into `stages` parts
 * with the smallest maximum part (the linear-partition dynamic programme).
 */
export function balancedStarts(costs: readonly number[], stages: number, lastCosts: readonly number[] = costs): number[] {
  const n = costs.length;
  const prefixOf = (cs: readonly number[]) => cs.reduce((p, c) => (p.push(p[p.length - 1] + c), p), [0]);
  const prefix = prefixOf(costs);
  const lastPrefix = prefixOf(lastCosts);
  // The last stage (the part that ends at n) is costed with lastCosts.
  const sum = (i: number, j: number, k: number) => (k === stages && j === n ? lastPrefix[j] - lastPrefix[i] : prefix[j] - prefix[i]);
  // best[k][j]: smallest max over splits of the first j segments into k parts; cut[k][j]: start of the last part.
  const best = Array.from({ length: stages + 1 }, () => new Array<number>(n + 1).fill(Infinity));
  const cut = Array.from({ length: stages + 1 }, () => new Array<number>(n + 1).fill(0));
  best[0][0] = 0;
  for (let k = 1; k <= stages; k++) {
    for (let j = k; j <= n; j++) {
      for (let i = k - 1; i < j; i++) {
        const v = Math.max(best[k - 1][i], sum(i, j, k));
        if (v < best[k][j]) {
          best[k][j] = v;
          cut[k][j] = i;
        }
      }
    }
  }
  const starts: number[] = [];
  for (let k = stages, j = n; k >= 1; k--) {
    starts.unshift(cut[k][j]);
    j = cut[k][j];
  }
  return starts;
}

function stagesFromStarts(names: readonly string[], starts: readonly number[], extraDelay: number): StageSpec[] {
  const delays = stageDelays(starts.length, extraDelay);
  return starts.map((start, i) => {
    const end = i + 1 < starts.length ? starts[i + 1] : names.length;
    return { index: i + 1, start, end, segments: names.slice(start, end), delay: delays[i] };
  });
}

/**
 * Median forward time of each segment on `x` in milliseconds (inference context, so no
 * statistics advance), for balancing stages. Each segment runs `repeats` times.
 */
export function measureSegmentTimes(segments: readonly Segment[], x: tf.Tensor, repeats = 5): number[] {
  const ctx: SegmentContext = { training: false, recomputing: false, step: 0 };
  const times: number[][] = segments.map(() => []);
  tf.tidy(() => {
    let xs = [x];
    segments.forEach((s, i) => {
      let out = s.forward(xs, ctx);
      out.forEach((t) => t.dataSync());
      for (let r = 0; r < repeats; r++) {
        const t0 = performance.now();
        out = s.forward(xs, ctx);
        out.forEach((t) => t.dataSync());
        times[i].push(performance.now() - t0);
      }
      xs = out;
    });
  });
  return times.map(median);
}

/**
 * Median forward and backward (VJP w.r.t. input and parameters) time of each segment on
 * `x` in milliseconds, inference context for the forward, recomputing for the backward,
 * so no statistics advance. For balancing stages by what they really run. A first,
 * untimed pass warms the JIT: in a fresh process the first calls of each kernel are
 * several times slower (measured on the MNIST CNN at batch 1: the first convolution
 * 1.85 ms cold against 0.5-0.6 ms after), which put the cut in the wrong place.
 */
export function measureSegmentCosts(segments: readonly Segment[], x: tf.Tensor, repeats = 9): { forward: number[]; backward: number[] } {
  measureOnce(segments, x, 2);
  return measureOnce(segments, x, repeats);
}

function measureOnce(segments: readonly Segment[], x: tf.Tensor, repeats: number): { forward: number[]; backward: number[] } {
  const forward = measureSegmentTimes(segments, x, repeats);
  const ctx: SegmentContext = { training: true, recomputing: true, step: 0 };
  const backward: number[] = [];
  tf.tidy(() => {
    let xs = [x];
    for (const s of segments) {
      const ys = s.forward(xs, { ...ctx, training: false, recomputing: false });
      const dys = ys.map((y) => tf.onesLike(y));
      const run = () => vectorJacobianProduct(() => s.forward(xs, ctx), [...xs, ...s.params.filter((v) => v.trainable)], dys).forEach((g) => g?.dataSync());
      run();
      const times: number[] = [];
      for (let r = 0; r < repeats; r++) {
        const t0 = performance.now();
        tf.tidy(run);
        times.push(performance.now() - t0);
      }
      backward.push(median(times));
      xs = ys;
    }
  });
  return { forward, backward };
}

/**
 * Median time of one optimizer update of each segment's trainable parameters in
 * milliseconds, applied to copies (the model's weights do not move). Part of what a stage
 * runs per micro-batch: at batch 1 a large dense layer's update costs about as much as
 * its forward and backward, so leaving it out misplaces the cut.
 */
export function measureUpdateCosts(segments: readonly Segment[], members: readonly StepTransform[], repeats = 9): number[] {
  return segments.map((s) => {
    const params = s.params.filter((v) => v.trainable);
    if (params.length === 0) return 0;
    const copies = params.map((v) => tf.tidy(() => tf.variable(v.clone(), true))); // the tidy frees the clone; the copy keeps its data
    const byName = Object.fromEntries(copies.map((v) => [v.name, v]));
    const grads = tf.tidy(() => Object.fromEntries(copies.map((v) => [v.name, tf.zerosLike(v)])));
    const stepper = new ChainStepper(members, byName);
    try {
      const times: number[] = [];
      for (let r = -2; r < repeats; r++) {
        const t0 = performance.now();
        stepper.apply(grads, r + 2);
        copies[0].dataSync();
        if (r >= 0) times.push(performance.now() - t0);
      }
      return median(times);
    } finally {
      stepper.dispose();
      tf.dispose([...copies, ...Object.values(grads)]);
    }
  });
}

/** The middle value of `xs` (the upper one of an even count). */
function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}
