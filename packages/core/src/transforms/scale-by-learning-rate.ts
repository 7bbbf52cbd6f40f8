import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { ErrorCodes, TapfitError } from '../errors';
import { mapNamed } from '../tensors';
import { learningRate, parseOptions, transformName } from '../options';
import type { Schedule, StepTransform } from './types';

/** Its own step count, so a resumed run continues the schedule where it stopped. */
export type ScaleByLearningRateState = { count: number };

/**
 * Emit `-lr * u`: the step that turns a direction into an update added to the weights.
 * `lr` is a constant or a schedule evaluated at the transform's own count (0 first).
 */
export function scaleByLearningRate(
  lr: number | Schedule,
  options: { name?: string | undefined } = {},
): StepTransform<ScaleByLearningRateState> {
  const { name } = parseOptions(
    'scaleByLearningRate',
    z.strictObject({ lr: learningRate, name: transformName.default('lr') }),
    { lr, ...options },
  );
  const valueAt = typeof lr === 'number' ? () => lr : lr;
  const self: StepTransform<ScaleByLearningRateState> = {
    name,
    hyperparams: { lr },
    init: () => ({ count: 0 }),
    update(updates, state, _params, ctx) {
      const value = valueAt(state.count);
      if (!Number.isFinite(value) || value < 0) {
        throw new TapfitError(
          ErrorCodes.CONFIG,
          `scaleByLearningRate('${name}'): the schedule gave ${value} at step ${state.count}; ` +
            'a learning rate must be a finite number >= 0. Fix the schedule.',
        );
      }
      const next = { count: state.count + 1 };
      if (ctx?.fold?.target === self) {
        // The last step of the chain: the caller writes p + (-lr) u in one pass (transformStep).
        ctx.fold.scale = -value;
        return [updates, next];
      }
      return [mapNamed(updates, (u) => tf.mul(u, -value)), next];
    },
  };
  return self;
}
