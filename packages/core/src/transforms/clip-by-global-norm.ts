import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { mapNamed } from '../tensors';
import { parseOptions, positive, transformName } from '../options';
import type { StepTransform } from './types';

/**
 * Scale all updates together so their global L2 norm is at most `maxNorm`:
 * u * maxNorm / max(norm, maxNorm). The factor stays on the device (no readback, so
 * the step never waits for the accelerator) and is exactly 1 when norm <= maxNorm.
 */
export function clipByGlobalNorm(maxNorm: number, options: { name?: string } = {}): StepTransform<Record<string, never>> {
  const { name } = parseOptions(
    'clipByGlobalNorm',
    z.strictObject({ maxNorm: positive, name: transformName.default('clip') }),
    { maxNorm, ...options },
  );
  return {
    name,
    hyperparams: { maxNorm },
    init: () => ({}),
    update(updates, state) {
      const all = Object.values(updates);
      if (all.length === 0) return [updates, state];
      const norm = tf.sqrt(tf.addN(all.map((u) => tf.sum(tf.square(u)))));
      const factor = tf.div(maxNorm, tf.maximum(norm, maxNorm));
      return [mapNamed(updates, (u) => tf.mul(u, factor)), state];
    },
  };
}
