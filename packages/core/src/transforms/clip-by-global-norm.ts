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
      const norm = globalNorm(all);
      const factor = tf.div(maxNorm, tf.maximum(norm, maxNorm));
      return [mapNamed(updates, (u) => tf.mul(u, factor)), state];
    },
  };
}

/**
 * sqrt(sum of u^2 over all tensors), as a scalar on the device. The sum of squares
 * overflows float32 once the norm passes ~1.8e19 (a finite update would then be clipped
 * to 0) and underflows below ~1e-19 (squares flush to zero: a `maxNorm` that small would
 * not clip), so there the norm is taken of the updates divided by their largest
 * magnitude s and multiplied back: s sqrt(sum (u / s)^2). Otherwise the plain norm is
 * kept, the same bits as before. An Inf or NaN entry leaves the plain (non-finite) norm.
 * Both norms are computed every step and the choice is made on the device (choosing on the
 * host would read back every step): about 2.5x the plain norm's kernels, a cost of
 * clipping only.
 */
/** Below this the plain sum of squares has lost precision to float32's subnormals (1e-18^2 = 1e-36, near its smallest normal 1.2e-38). */
const SMALLEST_PLAIN_NORM = 1e-18;

function globalNorm(all: tf.Tensor[]): tf.Tensor {
  const plain = tf.sqrt(tf.addN(all.map((u) => tf.sum(tf.square(u)))));
  const nonEmpty = all.filter((u) => u.size > 0); // max of nothing is not defined
  if (nonEmpty.length === 0) return plain;
  const largest = tf.max(tf.stack(nonEmpty.map((u) => tf.max(tf.abs(u)))));
  const rescaled = tf.mul(largest, tf.sqrt(tf.addN(nonEmpty.map((u) => tf.sum(tf.square(tf.div(u, largest)))))));
  const outOfRange = tf.logicalOr(tf.logicalNot(tf.isFinite(plain)), tf.less(plain, SMALLEST_PLAIN_NORM));
  return tf.where(tf.logicalAnd(outOfRange, tf.isFinite(rescaled)), rescaled, plain);
}
