import * as tf from '@tensorflow/tfjs';
import type { NamedTensors } from '../tensors';
import { applyUpdates } from './apply-updates';
import { disposeState } from './state';
import type { StepContext, StepTransform, TransformState } from './types';

/**
 * One optimizer step with the trainer's memory pattern: run the transform and apply its
 * updates inside a tidy that keeps only the new state, then dispose the tensors of the
 * old state that the new one does not reuse. Returns the new state; `grads` stay the
 * caller's. If the transform throws, parameters and the old state are untouched.
 */
export function transformStep<S extends TransformState>(
  transform: StepTransform<S>,
  params: Record<string, tf.Variable>,
  grads: NamedTensors,
  state: S,
  ctx: StepContext,
): S {
  const next = tf.tidy(() => {
    const [updates, newState] = transform.update(grads, state, params, ctx);
    applyUpdates(params, updates);
    return newState;
  });
  disposeState(state, next);
  return next;
}
