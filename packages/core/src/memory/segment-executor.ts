import * as tf from '@tensorflow/tfjs';
import { injectable } from 'tsyringe';
import { ErrorCodes, TapfitError } from '../errors';
import type { Segment } from '../model/segment';
import type { Backprop } from '../services/tokens';
import { MEMORY_POLICIES, type MemoryPlan } from '../step/memory-plan';
import type { StepGradients, StepRequest } from '../step/step-request';
import type { NamedTensors } from '../tensors';
import { lossHead, SegmentWalk, type Level } from './walk';

/**
 * The `Backprop` that realises a memory plan: a segment-by-segment backward whose peak
 * does not grow with the activations of every layer at once (see SegmentWalk).
 * Gradients equal plain autodiff's. It runs the request's segments (the forward after
 * `forward` taps) with the request's context; the default Backprop hands it every plan
 * that recomputes, inverts or was measured by a planner.
 */
@injectable()
export class SegmentExecutor implements Backprop {
  readonly realisesMemoryPlan = true;
  compute({ x, y, segments, ctx, variables, plan, loss }: StepRequest): StepGradients {
    const levels = planLevels(segments, plan, variables);
    const end = lossHead((fwd) => loss(y, fwd()), variables, levels[levels.length - 1].segment.name);
    const walk = new SegmentWalk(levels, ctx, end.head);
    let kept = new Map<string, tf.Tensor>();
    try {
      // The walk keeps what it returns; the tidy frees the rest, also when a segment throws.
      tf.tidy(() => {
        kept = walk.run([x]);
      });
    } catch (err) {
      end.value()?.dispose();
      throw err;
    }
    const grads: NamedTensors = {};
    for (const [name, g] of kept) grads[name] = untrack(g);
    return { value: untrack(end.value()!), grads };
  }
}

/** A kept tensor handed back as an ordinary one, so the caller's tf.tidy owns it. */
function untrack<T extends tf.Tensor>(t: T): T {
  const copy = tf.clone(t);
  t.dispose();
  return copy;
}

/** Pairs each segment with its policy and trainable variables; rejects plans the model cannot run. */
export function planLevels(segments: readonly Segment[], plan: MemoryPlan, variables: readonly tf.Variable[]): Level[] {
  if (!segments.length) throw new TapfitError(ErrorCodes.CONFIG, 'SegmentExecutor: the model has no segments.');
  const names = new Set(segments.map((s) => s.name));
  const policies = new Map(plan.segments.map((s) => [s.name, s.policy]));
  for (const s of plan.segments) {
    if (!names.has(s.name)) {
      throw new TapfitError(ErrorCodes.CONFIG, `memory plan names segment '${s.name}', which the model does not have (segments: ${[...names].join(', ')}); plan again after changing the model.`);
    }
    if (!MEMORY_POLICIES.includes(s.policy)) {
      throw new TapfitError(ErrorCodes.CONFIG, `memory plan gives segment '${s.name}' the unknown policy '${String(s.policy)}'; use one of ${MEMORY_POLICIES.join(', ')}.`);
    }
  }
  const trainable = new Set(variables);
  return segments.map((segment) => {
    const policy = policies.get(segment.name) ?? 'store';
    if (policy === 'invert' && typeof segment.inverse !== 'function') {
      throw new TapfitError(ErrorCodes.CONFIG, `segment '${segment.name}' is planned 'invert' but has no inverse(); give the segment an inverse or plan it 'store' or 'recompute'.`);
    }
    if (policy !== 'store' && segment.notReplayable) {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `segment '${segment.name}' is planned '${policy}', but its forward cannot be replayed (${segment.notReplayable}): its gradients would not be the forward's. Plan it 'store'.`,
      );
    }
    return { segment, policy, variables: [...new Set(segment.params.filter((v) => trainable.has(v)))] };
  });
}
