import * as tf from '@tensorflow/tfjs';
import type { NamedTensors } from '../tensors';
import { applyUpdates } from './apply-updates';
import { disposeState, stateTensors } from './state';
import type { ScaleFold, StepContext, StepTransform, TransformState } from './types';

/**
 * One optimizer step, the one update path of the trainer and of asyncTrain: run the
 * transform and apply its updates inside a tidy that keeps only the new state (kept, so
 * it also outlives an enclosing tidy such as the trainer's step), then dispose the
 * tensors of the old state that the new one does not reuse. Returns the new state;
 * `grads` stay the caller's. If the transform throws, parameters and the old state are
 * untouched.
 */
export function transformStep<S extends TransformState>(
  transform: StepTransform<S>,
  params: Record<string, tf.Variable>,
  grads: NamedTensors,
  state: S,
  ctx: StepContext,
): S {
  const next = tf.tidy(() => {
    // A final scaleByLearningRate folds its -lr into the write: one pass over each parameter fewer, the same values.
    const fold: ScaleFold = { target: transform, scale: 1 };
    const [updates, newState] = transform.update(grads, state, params, { ...ctx, fold });
    applyUpdates(params, updates, fold.scale);
    return newState;
  });
  stateTensors(next).forEach((t) => tf.keep(t));
  disposeState(state, next);
  return next;
}
