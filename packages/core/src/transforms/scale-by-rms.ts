import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { mapNamed, zerosLikeNamed, type NamedTensors } from '../tensors';
import { bufferFor, withUnchangedBuffers } from './buffers';
import { fraction, nonNegative, parseOptions, transformName } from '../options';
import type { StepTransform } from './types';

/** The running mean of squared gradients. */
export type ScaleByRmsState = { nu: NamedTensors };

export interface ScaleByRmsOptions {
  /** Decay of the running mean of g^2; default 0.9 (tfjs's rmsprop). */
  decay?: number | undefined;
  /** Added to the mean square inside the square root; default 1e-7 (the float32 backends' epsilon). */
  eps?: number | undefined;
  /** Default 'rms'. */
  name?: string | undefined;
}

/**
 * RMSProp's direction as tfjs-core computes it: nu = decay nu + (1 - decay) g^2, emit
 * g / sqrt(nu + eps) (eps inside the root). nu starts at 0. Chained before momentum and
 * scaleByLearningRate it is tfjs's RMSProp with momentum (for a constant learning rate,
 * tfjs's lr inside the momentum buffer is the same update).
 */
export function scaleByRms(options: ScaleByRmsOptions = {}): StepTransform<ScaleByRmsState> {
  const { decay, eps, name } = parseOptions(
    'scaleByRms',
    z.strictObject({ decay: fraction.default(0.9), eps: nonNegative.default(1e-7), name: transformName.default('rms') }),
    options,
  );
  return {
    name,
    hyperparams: { decay, eps },
    init: (params) => ({ nu: zerosLikeNamed(params) }),
    update(updates, state) {
      const nu = mapNamed(updates, (g, key) =>
        tf.add(tf.mul(bufferFor(state.nu, key, g, `scaleByRms('${name}') nu`), decay), tf.mul(tf.square(g), 1 - decay)),
      );
      return [mapNamed(updates, (g, key) => tf.div(g, tf.sqrt(tf.add(nu[key], eps)))), { nu: withUnchangedBuffers(state.nu, nu) }];
    },
  };
}
