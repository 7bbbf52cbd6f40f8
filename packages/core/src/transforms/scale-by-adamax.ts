import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { mapNamed, zerosLikeNamed, type NamedTensors } from '../tensors';
import { bufferFor, withUnchangedBuffers } from './buffers';
import { fraction, nonNegative, parseOptions, transformName } from '../options';
import type { StepTransform } from './types';

/** First moment and exponentially weighted infinity norm; `count` drives the bias correction. */
export type ScaleByAdamaxState = { count: number; mu: NamedTensors; u: NamedTensors };

export interface ScaleByAdamaxOptions {
  /** Decay of the first moment; default 0.9. */
  b1?: number | undefined;
  /** Decay of the infinity norm; default 0.999. */
  b2?: number | undefined;
  /** Added to the infinity norm in the denominator; default 1e-7 (the float32 backends' epsilon). */
  eps?: number | undefined;
  /** Default 'adamax'. */
  name?: string | undefined;
}

/**
 * Adamax's direction (Kingma & Ba §7.1, as tfjs-core computes it): mu = b1 mu + (1-b1) g,
 * u = max(b2 u, |g|), emit mu / ((1 - b1^t) (u + eps)) with t = 1 on the first step.
 */
export function scaleByAdamax(options: ScaleByAdamaxOptions = {}): StepTransform<ScaleByAdamaxState> {
  const { b1, b2, eps, name } = parseOptions(
    'scaleByAdamax',
    z.strictObject({
      b1: fraction.default(0.9),
      b2: fraction.default(0.999),
      eps: nonNegative.default(1e-7),
      name: transformName.default('adamax'),
    }),
    options,
  );
  return {
    name,
    hyperparams: { b1, b2, eps },
    init: (params) => ({ count: 0, mu: zerosLikeNamed(params), u: zerosLikeNamed(params) }),
    update(updates, state) {
      const t = state.count + 1;
      const what = `scaleByAdamax('${name}')`;
      const mu = mapNamed(updates, (g, key) => tf.add(tf.mul(bufferFor(state.mu, key, g, `${what} mu`), b1), tf.mul(g, 1 - b1)));
      const u = mapNamed(updates, (g, key) => tf.maximum(tf.mul(bufferFor(state.u, key, g, `${what} u`), b2), tf.abs(g)));
      const correction = 1 / (1 - b1 ** t);
      const next = { count: t, mu: withUnchangedBuffers(state.mu, mu), u: withUnchangedBuffers(state.u, u) };
      return [mapNamed(mu, (m, key) => tf.mul(tf.div(m, tf.add(u[key], eps)), correction)), next];
    },
  };
}
