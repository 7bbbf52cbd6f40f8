import { ErrorCodes, TapfitError } from '@tapfit/core';
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
