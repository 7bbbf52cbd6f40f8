import { z } from 'zod';
import { zerosLikeNamed, type NamedTensors } from '../tensors';
import { bufferFor, withUnchangedBuffers } from './buffers';
import { fraction, nonNegative, parseOptions, transformName } from '../options';
import { adamMoments } from './fused-updates';
import type { StepTransform } from './types';

/** First and second moment estimates; `count` drives the bias correction. */
export type ScaleByAdamState = { count: number; mu: NamedTensors; nu: NamedTensors };

export interface ScaleByAdamOptions {
  /** Decay of the first moment; default 0.9. */
  b1?: number | undefined;
  /** Decay of the second moment; default 0.999. */
  b2?: number | undefined;
  /** Added to sqrt(second moment) in the denominator; default 1e-8. */
  eps?: number | undefined;
  /** Default 'adam'. */
  name?: string | undefined;
}

/**
 * Adam's direction (Kingma & Ba, as PyTorch and optax compute it):
 * mu = b1 mu + (1-b1) g, nu = b2 nu + (1-b2) g^2, emit mu_hat / (sqrt(nu_hat) + eps)
 * with mu_hat = mu / (1 - b1^t), nu_hat = nu / (1 - b2^t), t = 1 on the first step.
 */
export function scaleByAdam(options: ScaleByAdamOptions = {}): StepTransform<ScaleByAdamState> {
  const { b1, b2, eps, name } = parseOptions(
    'scaleByAdam',
    z.strictObject({
      b1: fraction.default(0.9),
      b2: fraction.default(0.999),
      eps: nonNegative.default(1e-8),
      name: transformName.default('adam'),
    }),
    options,
  );
  return {
    name,
    hyperparams: { b1, b2, eps },
    init: (params) => ({ count: 0, mu: zerosLikeNamed(params), nu: zerosLikeNamed(params) }),
    update(updates, state) {
      const t = state.count + 1;
      const what = `scaleByAdam('${name}')`;
      const coefficients = { b1, b2, eps, muScale: 1 / (1 - b1 ** t), nuScale: 1 / (1 - b2 ** t) };
      const mu: NamedTensors = {};
      const nu: NamedTensors = {};
      const out: NamedTensors = {};
      for (const [key, g] of Object.entries(updates)) {
        ({ mu: mu[key], nu: nu[key], direction: out[key] } = adamMoments(g, bufferFor(state.mu, key, g, `${what} mu`), bufferFor(state.nu, key, g, `${what} nu`), coefficients));
      }
      return [out, { count: t, mu: withUnchangedBuffers(state.mu, mu), nu: withUnchangedBuffers(state.nu, nu) }];
    },
  };
}
