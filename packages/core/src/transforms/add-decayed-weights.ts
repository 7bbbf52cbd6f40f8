import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { mapNamed } from '../tensors';
import { bufferFor } from './buffers';
import { nonNegative, parseOptions, transformName } from '../options';
import type { StepTransform } from './types';

export interface AddDecayedWeightsOptions {
  /** Which parameters decay (by parameter name); default all. AdamW setups often skip biases. */
  mask?: ((paramName: string) => boolean) | undefined;
  /** Default 'weightDecay'. */
  name?: string | undefined;
}

/**
 * Emit `u + lambda * w`. Before momentum (or adam) this is coupled L2 regularisation,
 * g_t = grad + lambda w_t as in docs/techniques.md §0.1; after adam and before the learning
 * rate it is AdamW's decoupled decay, w -= lr * lambda * w.
 */
export function addDecayedWeights(
  weightDecay: number,
  options: AddDecayedWeightsOptions = {},
): StepTransform<Record<string, never>> {
  const { name, mask } = parseOptions(
    'addDecayedWeights',
    z.strictObject({
      weightDecay: nonNegative,
      mask: z.custom<(n: string) => boolean>((v) => typeof v === 'function', 'must be a function (paramName) => boolean').optional(),
      name: transformName.default('weightDecay'),
    }),
    { weightDecay, ...options },
  );
  return {
    name,
    hyperparams: { weightDecay },
    init: () => ({}),
    update(updates, state, params) {
      const out = mapNamed(updates, (u, key) =>
        mask && !mask(key) ? u : tf.add(u, tf.mul(bufferFor(params, key, u, `addDecayedWeights('${name}') params`), weightDecay)),
      );
      return [out, state];
    },
  };
}
