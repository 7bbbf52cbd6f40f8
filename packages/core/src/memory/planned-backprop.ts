import { injectable } from 'tsyringe';
import { AutodiffBackprop } from '../services/defaults';
import type { Backprop } from '../services/tokens';
import type { MemoryPlan } from '../step/memory-plan';
import type { StepGradients, StepRequest } from '../step/step-request';
import { SegmentExecutor } from './segment-executor';

/**
 * The trainer's default Backprop: it realises whatever plan the `planMemory` hook
 * settled on. Plain autodiff (one tape, the fastest) when every segment is `store` and
 * no planner predicted the peak; the segment executor when a segment is recomputed or
 * inverted, or when a planner's prediction (measured on the executor's own code paths)
 * must hold. So marking segments `invert` (reversible blocks) or setting a memory
 * budget needs no service registration.
 */
@injectable()
export class PlannedBackprop implements Backprop {
  readonly realisesMemoryPlan = true;
  private readonly autodiff = new AutodiffBackprop();
  private readonly executor = new SegmentExecutor();

  compute(request: StepRequest): StepGradients {
    return (runsOnExecutor(request.plan) ? this.executor : this.autodiff).compute(request);
  }
}

/** Whether PlannedBackprop runs `plan` on the segment executor (else plain autodiff). */
export function runsOnExecutor(plan: MemoryPlan): boolean {
  return plan.predictedPeakBytes !== undefined || plan.segments.some((s) => s.policy !== 'store');
}
