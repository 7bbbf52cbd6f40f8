import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';

export interface GradientCheckResult {
  /** Largest relative error over the probed directions. */
  maxRelError: number;
  /** Per direction: analytic directional derivative and the finite-difference one. */
  probes: { analytic: number; numeric: number; relError: number }[];
}

/**
 * Compares `tf.grads(f)` with central finite differences along random directions:
 * (f(x + eps d) - f(x - eps d)) / 2 eps against <grad f(x), d>. Works in the backend's
 * float32, so keep inputs O(1) and eps around 1e-2..1e-3. Throws when any probe's
 * relative error exceeds `tolerance`.
 */
export function checkGradients(
  f: (...xs: tf.Tensor[]) => tf.Scalar,
  xs: tf.Tensor[],
  options: { eps?: number | undefined; tolerance?: number | undefined; directions?: number | undefined; seed?: number | undefined } = {},
): GradientCheckResult {
  const eps = options.eps ?? 1e-2;
  const tolerance = options.tolerance ?? 1e-2;
  const probes: GradientCheckResult['probes'] = [];
  tf.tidy(() => {
    const grads = tf.grads(f)(xs);
    for (let k = 0; k < (options.directions ?? 3); k++) {
      const ds = xs.map((x, i) => tf.randomNormal(x.shape, 0, 1, 'float32', (options.seed ?? 7) + 31 * k + i));
      const analytic = grads.reduce((acc, g, i) => acc + tf.sum(tf.mul(g, ds[i])).dataSync()[0], 0);
      const at = (s: number) => f(...xs.map((x, i) => tf.add(x, tf.mul(ds[i], s)))).dataSync()[0];
      const numeric = (at(eps) - at(-eps)) / (2 * eps);
      const relError = Math.abs(analytic - numeric) / Math.max(1e-6, Math.abs(analytic), Math.abs(numeric));
      probes.push({ analytic, numeric, relError });
    }
  });
  const maxRelError = Math.max(...probes.map((p) => p.relError));
  if (!(maxRelError <= tolerance)) {
    throw new TapfitError(
      ErrorCodes.CHECK,
      `gradient check failed: relative error ${maxRelError.toExponential(2)} > tolerance ${tolerance} (probes: ${JSON.stringify(probes)}). ` +
        'Fix the gradient of f (a custom gradient or kernel), or, if f is only rough in float32, raise `tolerance` or pick `eps` in 1e-3..1e-2.',
    );
  }
  return { maxRelError, probes };
}
