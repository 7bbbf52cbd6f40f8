import type * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { Segment, SegmentContext } from '../model/segment';

/**
 * The forward of one training step as data: the segments to run and the context they
 * run in. `forward` taps change this (substitute weights through `ctx.weights`, set
 * flags, wrap segments), never a closure, so every `Backprop` (plain autodiff, the
 * memory executor, pipeline or reversible executors) runs exactly the same forward.
 */
export interface ForwardPass {
  /** The model's segments, possibly wrapped by taps; same names and order as the model's. */
  readonly segments: readonly Segment[];
  readonly ctx: SegmentContext;
}

/** Runs the segments in order (one tensor in, the first output out). */
export function runForward(pass: ForwardPass, x: tf.Tensor): tf.Tensor {
  let xs = [x];
  for (const s of pass.segments) xs = s.forward(xs, pass.ctx);
  return xs[0];
}

/**
 * Throws unless `pass` still has the model's segments by name and order: the memory
 * plan and every executor address segments by name, so a tap may wrap a segment but
 * not drop, add or rename one.
 */
export function checkForwardPass(pass: ForwardPass, names: readonly string[], plugin: string): void {
  const got = pass?.segments?.map((s) => s?.name);
  const fail = (why: string): never => {
    throw new TapfitError(
      ErrorCodes.PLUGIN_FAILED,
      `plugin '${plugin}' failed in hook 'forward': ${why}. A forward tap returns { segments, ctx } with the same segments (wrapped if need be), e.g. ({ ...pass, ctx: { ...pass.ctx, weights } }).`,
    );
  };
  if (!pass || typeof pass !== 'object' || !pass.ctx || !Array.isArray(got)) fail('it returned something that is not a ForwardPass');
  if (got.length !== names.length || got.some((n, i) => n !== names[i])) fail(`the segments are [${got.join(', ')}] but the model's are [${names.join(', ')}]`);
}
