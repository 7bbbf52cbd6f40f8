import { z } from 'zod';
import { ErrorCodes, TapfitError } from '../errors';
import type { ModelInfo } from '../hooks/types';
import type { MemoryPlanner } from '../services/tokens';
import { parseOptions } from '../options';
import { storeAllPlan, type MemoryPlan, type MemoryPolicy } from '../step/memory-plan';
import { keptBytes, predictPeak, predictPeakBytes } from './predict';
import type { MemoryProfile } from './profile';

export interface BudgetPlannerOptions {
  /**
   * Bytes one training step may add on top of what is live before it (parameters,
   * optimizer state, the batch), in TF.js's accounting (`tf.profile().peakBytes`).
   */
  budgetBytes: number;
  /** The model's measured segments: `await profileSegments(model, sample, { loss })`. */
  profile: MemoryProfile;
}

const optionsSchema = z
  .object({
    budgetBytes: z.number().positive(),
    profile: z.custom<MemoryProfile>((p) => !!p && Array.isArray((p as MemoryProfile).segments), 'a MemoryProfile from profileSegments()'),
  })
  .strict();

const mib = (b: number): string => `${(b / 2 ** 20).toFixed(2)} MiB`;

/**
 * Picks per-segment policies so that the predicted peak of a step fits a byte budget.
 * Starting from a plan (all `store`, or what plugins marked), it turns `store` segments
 * into `recompute`, the cheapest first (forward time per byte of predicted peak saved),
 * until the prediction fits. Segments marked `invert` or `recompute` keep their mark, and
 * a segment whose forward cannot be replayed (`notReplayable`) stays `store`; plugins'
 * `extraBytes` count against the budget.
 */
export class BudgetPlanner implements MemoryPlanner {
  readonly budgetBytes: number;
  private readonly profile: MemoryProfile;

  constructor(options: BudgetPlannerOptions) {
    const o = parseOptions('BudgetPlanner', optionsSchema, options);
    this.budgetBytes = o.budgetBytes;
    this.profile = o.profile;
  }

  plan(info: ModelInfo): MemoryPlan {
    return this.fit(storeAllPlan(info.segmentNames));
  }

  /** Fits `base` (e.g. the plan after other plugins' `planMemory` taps) to the budget; `base` is not changed. */
  fit(base: MemoryPlan): MemoryPlan {
    const costs = this.profile.segments;
    const names = base.segments.map((s) => s.name);
    if (names.length !== costs.length || names.some((n, i) => n !== costs[i].name)) {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `BudgetPlanner: the profile measured segments [${costs.map((c) => c.name).join(', ')}] but the plan has [${names.join(', ')}]; profile the model as it is after setup.`,
      );
    }
    base.segments.forEach((s, i) => {
      if (s.policy === 'invert' && costs[i].differentiable && costs[i].inversePeakBytes === undefined) {
        throw new TapfitError(ErrorCodes.CONFIG, `segment '${s.name}' is planned 'invert' but has no inverse(); give the segment an inverse or plan it 'store' or 'recompute'.`);
      }
    });
    const extra = base.extraBytes.reduce((a, e) => a + e.bytes, 0);
    const policies: MemoryPolicy[] = base.segments.map((s) => s.policy);
    const predict = (): number => predictPeakBytes(this.profile, policies, extra);

    // Greedy: each round recomputes the segment that buys the most peak reduction per
    // millisecond of extra forward. When no single switch lowers the peak (it sits
    // where several segments add up), take the cheapest per byte it stops keeping.
    const perByte = (i: number): number => {
      const saved = costs[i].storedBytes - costs[i].inputBytes;
      return saved > 0 ? costs[i].forwardMs / saved : Infinity;
    };
    const open = new Set(costs.map((_, i) => i).filter((i) => policies[i] === 'store' && costs[i].differentiable && !costs[i].notReplayable));
    let peak = predict();
    let best = { peak, policies: [...policies] };
    const chosen: number[] = [];
    while (peak > this.budgetBytes && open.size) {
      let pick = -1;
      let pickScore = Infinity;
      for (const i of open) {
        policies[i] = 'recompute';
        const p = predict();
        policies[i] = 'store';
        const score = p < peak ? costs[i].forwardMs / (peak - p) : Infinity;
        if (score < pickScore) [pick, pickScore] = [i, score];
      }
      if (pick < 0) pick = [...open].reduce((a, b) => (perByte(b) < perByte(a) ? b : a));
      policies[pick] = 'recompute';
      open.delete(pick);
      chosen.push(pick);
      peak = predict();
      if (peak < best.peak) best = { peak, policies: [...policies] };
    }
    // Then undo recomputes that later picks made unnecessary, the most expensive first.
    if (peak <= this.budgetBytes) {
      for (const i of chosen.sort((a, b) => costs[b].forwardMs - costs[a].forwardMs)) {
        policies[i] = 'store';
        const p = predict();
        if (p <= this.budgetBytes) peak = p;
        else policies[i] = 'recompute';
      }
    }
    if (peak > this.budgetBytes) {
      const recomputed = best.policies.filter((p) => p === 'recompute').length;
      const at = predictPeak(this.profile, best.policies, extra);
      const where = at.segment < costs.length ? `segment '${costs[at.segment].name}'` : 'the loss';
      throw new TapfitError(
        ErrorCodes.MEMORY,
        `memory budget of ${mib(this.budgetBytes)} (${this.budgetBytes} bytes) cannot be met: the smallest predicted peak is ${mib(best.peak)} (${best.peak} bytes), ` +
          `with ${recomputed} of ${costs.length} segments recomputed${extra ? ` and ${mib(extra)} held by plugins` : ''}; it is reached during the ${at.phase} of ${where}. ` +
          `Raise budgetBytes to at least ${best.peak}, use a smaller batch, split ${where} into smaller segments, or give segments an inverse and plan them 'invert'.`,
      );
    }
    return {
      segments: base.segments.map((s, i) => ({ ...s, policy: policies[i], predictedBytes: keptBytes(costs[i], policies[i]) })),
      extraBytes: base.extraBytes,
      predictedPeakBytes: peak,
      measuredBatchSize: this.profile.batchSize,
    };
  }
}
