import type * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { Segment, SegmentContext } from '../model/segment';
import type { TrainableModel } from '../model/trainable-model';

/** What the first segment receives in a training step. */
export interface StepInput {
  readonly x: tf.Tensor;
  readonly ctx: SegmentContext;
}

/**
 * Finds the input and context the trainer's forward function hands the first segment,
 * without running the model: for one call the model's segments are swapped for
 * pass-throughs that record what they receive (forward taps around the chain still
 * run, on the pass-through result). This bridges `Backprop.compute`, which gets the
 * forward as a closure, until the trainer passes a StepInput itself. Tensors made by
 * forward taps are left to the caller's tf.tidy (the trainer runs the step in one).
 */
export function probeStepInput(forward: () => tf.Tensor, model: TrainableModel): StepInput {
  const target = model as { segments: readonly Segment[] };
  const original = target.segments;
  let seen: StepInput | undefined;
  const probes: Segment[] = original.map((s, i) => ({
    name: s.name,
    params: s.params,
    forward: (xs: tf.Tensor[], ctx: SegmentContext) => {
      if (i === 0 && !seen) seen = { x: xs[0], ctx };
      return xs;
    },
  }));
  try {
    target.segments = probes;
  } catch (err) {
    throw new TapfitError(ErrorCodes.CONFIG, 'SegmentExecutor: the model object is frozen, so the step input cannot be found from the forward closure; pass it: compute(loss, forward, variables, model, plan, { x, ctx }).', { cause: err });
  }
  try {
    forward();
  } finally {
    target.segments = original;
  }
  if (!seen) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      "SegmentExecutor: the forward function did not run the model's segments (a `forward` tap replaced the chain?), so the executor cannot find the step input. " +
        'Pass it explicitly: compute(loss, forward, variables, model, plan, { x, ctx }), or use the default AutodiffBackprop with such taps.',
    );
  }
  return seen;
}
