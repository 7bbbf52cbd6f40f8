import type { MemoryPlan, Segment } from '@tapfit/core';
import { ReversibleSegment } from './reversible-segment';

/**
 * Whether `next`, planned 'invert', hands `segment` back exactly the output `segment`'s
 * forward gave it (so that `segment`, planned 'invert' too, rebuilds its own input from the
 * right values). An exact segment rounds the input streams its updates touch
 * (fixed-point.ts), so its backward rebuilds q(y), not y. That is y itself only where
 * `segment` already put y on a grid at least as coarse: an exact segment with no more
 * fraction bits that rounds every slot of that stream. A float32 segment, or any other
 * segment, does not; rebuilding from q(y) it would compute its gradients at the wrong
 * point (by up to half a grid step, relative to activations that may be far smaller).
 */
export function handsBackExactly(segment: Segment, next: Segment): boolean {
  // A float32 (or non-reversible) `next` rounds nothing: it rebuilds y up to float32 rounding.
  if (!(next instanceof ReversibleSegment) || next.fixedPoint === undefined) return true;
  const bits = next.fixedPoint;
  const onGrid = (k: number) => segment instanceof ReversibleSegment && segment.fixedPoint !== undefined && segment.fixedPoint <= bits && segment.outputOnGrid(k);
  return next.roundedStreams.every(onGrid);
}

/**
 * Plans 'recompute' (keep the input) each segment of `plan` (changed in place) that is
 * planned 'invert' but whose successor, also 'invert', does not hand it back its output
 * exactly; returns their names. Last first, so a segment that stops inverting spares the
 * one before it. A segment with no parameters before or in it keeps 'invert': the executor
 * differentiates nothing there and never rebuilds its input (RevBiFPN's stem).
 */
export function recomputeBeforeRounding(segments: readonly Segment[], plan: MemoryPlan): string[] {
  const entries = new Map(plan.segments.map((s) => [s.name, s]));
  const recomputed: string[] = [];
  for (let i = segments.length - 2; i >= 0; i--) {
    const here = entries.get(segments[i].name);
    if (here?.policy !== 'invert' || entries.get(segments[i + 1].name)?.policy !== 'invert') continue;
    if (handsBackExactly(segments[i], segments[i + 1]) || !segments.slice(0, i + 1).some((s) => s.params.length > 0)) continue;
    here.policy = 'recompute';
    recomputed.unshift(segments[i].name);
  }
  return recomputed;
}
