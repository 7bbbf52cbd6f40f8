import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';

/**
 * Exact reversible arithmetic (docs/techniques.md §2.5, "Exact arithmetic"). In float32,
 * `(x + F) - F` is not always `x`, so a rebuilt input drifts from the one the forward saw,
 * and the reversible network's training slowly parts from its stored twin's. On a grid of
 * multiples of 2^-bits, adding and subtracting are exact while |values| < 2^(24 - bits):
 * a segment that rounds its inputs and each update's sum to the grid rebuilds its inputs
 * bit for bit. Beyond that range the sums round as plain float32 does (no worse).
 *
 * Rounding is invisible to gradients (straight-through: its gradient is the identity),
 * in the stored twin's autodiff and in the segment's own backward alike, so both compute
 * the same gradients of the same function.
 */
export type Quantizer = (x: tf.Tensor) => tf.Tensor;

/** The default fraction bits: resolution 2^-16 (1.5e-5), exact while |values| < 256. */
export const DEFAULT_FRACTION_BITS = 16;

/** Throws a TapfitError naming `owner` unless `bits` is a valid `fixedPoint` option. */
export function checkFixedPoint(owner: string, bits: number | undefined): void {
  if (bits !== undefined && !(Number.isInteger(bits) && bits >= 0 && bits <= 23)) {
    throw new TapfitError(ErrorCodes.CONFIG, `${owner}: option 'fixedPoint' is ${bits}, but it counts the fraction bits of the exact-arithmetic grid; use an integer from 1 to 23 (default ${DEFAULT_FRACTION_BITS}), or 0 for plain float32.`);
  }
}

/** Checks a `fixedPoint` option (fraction bits) and returns the rounding, or undefined for plain float32. */
export function fixedPointQuantizer(segment: string, bits: number | undefined): Quantizer | undefined {
  checkFixedPoint(`segment '${segment}'`, bits);
  if (!bits) return undefined;
  const up = 2 ** bits;
  const down = 2 ** -bits;
  // Powers of two scale exactly; Round gives an integer-valued float.
  const round = tf.customGrad(((x: tf.Tensor) => ({ value: tf.mul(tf.round(tf.mul(x, up)), down), gradFunc: (dy: tf.Tensor) => dy })) as unknown as Parameters<typeof tf.customGrad>[0]);
  return (x) => round(x);
}
