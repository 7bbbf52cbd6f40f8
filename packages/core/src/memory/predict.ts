import type { MemoryPolicy } from '../step/memory-plan';
import type { MemoryProfile, SegmentCost } from './profile';

/**
 * Predicted peak bytes of one step under `policies` (one per profiled segment), above
 * what is live before the step, plus `extraBytes` that plugins hold outside the segments.
 *
 * It replays SegmentWalk's order of allocations and frees with the measured costs:
 * `live` follows what stays allocated between phases, and each phase's measured peak
 * is added on top of what is live when it runs.
 */
export function predictPeakBytes(profile: MemoryProfile, policies: readonly MemoryPolicy[], extraBytes = 0): number {
  return predictPeak(profile, policies, extraBytes).bytes;
}

/** Where a predicted peak happens: the segment (index; `segments.length` is the loss) and the phase. */
export interface PredictedPeak {
  readonly bytes: number;
  readonly segment: number;
  readonly phase: 'forward' | 'backward';
}

/** predictPeakBytes, plus where the peak is reached (what an impossible budget's error names). */
export function predictPeak(profile: MemoryProfile, policies: readonly MemoryPolicy[], extraBytes = 0): PredictedPeak {
  const costs = profile.segments;
  let live = 0;
  let peak = 0;
  let at: Omit<PredictedPeak, 'bytes'> = { segment: 0, phase: 'forward' };
  let where: Omit<PredictedPeak, 'bytes'> = at;
  const spike = (bytes: number): void => {
    if (live + bytes > peak) [peak, at] = [live + bytes, where];
  };

  // Mirrors SegmentWalk.descend; returns the bytes of the input gradient left for the level above.
  const level = (i: number, owned: boolean): number => {
    where = { segment: i, phase: 'forward' };
    if (i === costs.length) {
      spike(profile.head.peakBytes);
      live += profile.head.netBytes;
      return profile.head.inputGradBytes;
    }
    const c = costs[i];
    if (!c.differentiable) {
      spike(c.forwardPeakBytes);
      live += c.outputBytes;
      const dy = level(i + 1, true);
      where = { segment: i, phase: 'backward' };
      live -= c.outputBytes + dy; // the input handed back, and a gradient nobody needs
      return 0;
    }
    switch (policies[i]) {
      case 'store': {
        spike(c.storeForwardPeakBytes);
        live += c.storedBytes;
        const dy = level(i + 1, false);
        where = { segment: i, phase: 'backward' };
        spike(c.storeBackwardPeakBytes - c.storedBytes - dy);
        live += c.storeNetBytes - c.storedBytes - dy;
        return c.inputGradBytes;
      }
      case 'recompute': {
        spike(c.forwardPeakBytes);
        live += c.outputBytes;
        const dy = level(i + 1, true);
        where = { segment: i, phase: 'backward' };
        live -= c.outputBytes; // the input handed back
        spike(c.vjpPeakBytes);
        live += c.vjpNetBytes - dy;
        return c.inputGradBytes;
      }
      case 'invert': {
        spike(c.forwardPeakBytes);
        live += c.outputBytes;
        if (owned) live -= c.inputBytes;
        const dy = level(i + 1, true);
        where = { segment: i, phase: 'backward' };
        if (owned && c.invertBackwardPeakBytes !== undefined) {
          // The segment's own backward: rebuild and VJP in one pass, then output and its gradient freed.
          spike(c.invertBackwardPeakBytes);
          live += (c.invertBackwardNetBytes ?? 0) - c.outputBytes - dy;
          return c.inputGradBytes;
        }
        if (owned) {
          spike(c.inversePeakBytes ?? 0);
          live += c.inputBytes;
        }
        live -= c.outputBytes;
        spike(c.vjpPeakBytes);
        live += c.vjpNetBytes - dy;
        return c.inputGradBytes;
      }
    }
  };

  level(0, false);
  where = { segment: 0, phase: 'backward' };
  spike(profile.largestGradBytes); // gradients handed over as fresh handles
  return { bytes: peak + extraBytes, ...at };
}

/** Bytes a segment keeps for its backward under `policy` (what describe() shows per segment). */
export function keptBytes(cost: SegmentCost, policy: MemoryPolicy): number {
  if (!cost.differentiable) return 0;
  return policy === 'store' ? cost.storedBytes : policy === 'recompute' ? cost.inputBytes : 0;
}
