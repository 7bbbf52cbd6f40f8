import * as tf from '@tensorflow/tfjs';
import { noiseSeed, type SegmentContext } from '@tapfit/core';

/**
 * Uniform [0, 1) noise that replays: seeded by the part's key and the forward's noise key
 * (`noiseSeed(ctx, key)`: the trainer's seed and the batch, core README "Randomness and
 * reproducibility"), never by a global RNG stream, so every forward of one batch (the
 * training forward, a recompute, the rebuild of an inverted segment) draws the same numbers,
 * a resumed run draws what a straight run would (docs/techniques.md §2.5, RNG replay), each
 * batch draws anew even while updates are withheld (a gradient delay, a skipped step), and
 * another trainer seed draws other masks.
 */
export function replayedUniform(shape: number[], key: string, ctx: SegmentContext): tf.Tensor {
  return tf.randomUniform(shape, 0, 1, 'float32', noiseSeed(ctx, key));
}

/** Inverted dropout with a replayed mask; the identity outside training or at rate 0. */
export function dropout(x: tf.Tensor, rate: number, key: string, ctx: SegmentContext): tf.Tensor {
  if (!ctx.training || rate <= 0) return x;
  const keep = tf.cast(tf.greaterEqual(replayedUniform(x.shape, key, ctx), rate), 'float32');
  return tf.mul(x, tf.div(keep, 1 - rate));
}

/** Stochastic depth: drops whole samples of a residual branch (one draw per sample), replayed like dropout. */
export function dropPath(x: tf.Tensor, rate: number, key: string, ctx: SegmentContext): tf.Tensor {
  if (!ctx.training || rate <= 0) return x;
  const shape = [x.shape[0], ...x.shape.slice(1).map(() => 1)];
  const keep = tf.cast(tf.greaterEqual(replayedUniform(shape, key, ctx), rate), 'float32');
  return tf.mul(x, tf.div(keep, 1 - rate));
}
