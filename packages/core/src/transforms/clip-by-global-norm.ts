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
export function clipByGlobalNorm(maxNorm: number, options: { name?: string | undefined } = {}): StepTransform<Record<string, never>> {
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
      const factor = clipFactor(all, maxNorm);
      return [mapNamed(updates, (u) => tf.mul(u, factor)), state];
    },
  };
}

/**
 * min(1, maxNorm / norm), norm = sqrt(sum of u^2 over all tensors), as a scalar on the
 * device. The sum of squares overflows float32 once the norm passes ~1.8e19 (a finite
 * update would then be clipped to 0) and underflows below ~1e-19 (squares flush to zero: a
 * `maxNorm` that small would not clip), so there the updates are divided by their largest
 * magnitude s and the factor is taken as (maxNorm / s) / sqrt(sum (u / s)^2): the norm
 * itself is never formed, since past float32's maximum (~3.4e38, finite entries near it)
 * it is Inf. Otherwise the plain factor is kept, the same bits as before. An Inf or NaN
 * entry leaves the plain (non-finite) factor. Both factors are computed every step and the
 * choice is made on the device (choosing on the host would read back every step): about
 * 2.5x the plain norm's kernels, a cost of clipping only.
 */
/** Below this the plain sum of squares has lost precision to float32's subnormals (1e-18^2 = 1e-36, near its smallest normal 1.2e-38). */
const SMALLEST_PLAIN_NORM = 1e-18;
/** float32's largest finite value: a plain norm above it is Inf. */
const FLOAT32_MAX = 3.4028234663852886e38;

function clipFactor(all: tf.Tensor[], maxNorm: number): tf.Tensor {
  const plain = tf.sqrt(tf.addN(all.map((u) => tf.sum(tf.square(u)))));
  // min(1, maxNorm / plain) is exactly 1 when plain <= maxNorm (division rounds monotonically)
  // and maxNorm / plain, the same bits as maxNorm / max(plain, maxNorm), when clipping;
  // plain 0 gives Inf -> 1, Inf gives 0, NaN stays NaN.
  const plainFactor = tf.div(maxNorm, plain);
  const nonEmpty = all.filter((u) => u.size > 0); // max of nothing is not defined
  if (nonEmpty.length === 0) return tf.minimum(plainFactor, 1);
  const largest = tf.max(tf.stack(nonEmpty.map((u) => tf.max(tf.abs(u)))));
  const unitNorm = tf.sqrt(tf.addN(nonEmpty.map((u) => tf.sum(tf.square(tf.div(u, largest))))));
  // Inf when maxNorm / s overflows: the norm is then negligible next to maxNorm and the
  // plain factor (1) is right; NaN for s = 0 or an Inf entry: the plain factor again.
  const rescaledFactor = tf.div(tf.div(maxNorm, largest), unitNorm);
  // NaN is neither greater nor less: a NaN norm keeps the plain factor.
  const outOfRange = tf.logicalOr(tf.greater(plain, FLOAT32_MAX), tf.less(plain, SMALLEST_PLAIN_NORM));
  return tf.minimum(tf.where(tf.logicalAnd(outOfRange, tf.isFinite(rescaledFactor)), rescaledFactor, plainFactor), 1);
}
