import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError, valueAndGradients, vectorJacobianProduct, type LossFn, type Segment, type SegmentContext } from '@tapfit/core';

type Grad = tf.Tensor | null;

/** Runs `segments` in order on `xs`. */
export function runSegments(segments: readonly Segment[], xs: tf.Tensor[], ctx: SegmentContext): tf.Tensor[] {
  for (const s of segments) xs = s.forward(xs, ctx);
  return xs;
}

/**
 * Runs `fn` with each variable temporarily holding `values[i]` and restores them after,
 * whatever happens. Assignment shares the tensors' data, so this costs one copy of the
 * current weights; it works for every segment, including tfjs-layers layers, which read
 * their variables directly and do not consult `SegmentContext.weights`.
 */
export function withWeights<T>(variables: readonly tf.Variable[], values: readonly tf.Tensor[], fn: () => T): T {
  if (!variables.length) return fn();
  const current = variables.map((v) => tf.keep(tf.clone(v)));
  try {
    variables.forEach((v, i) => v.assign(values[i]));
    return fn();
  } finally {
    variables.forEach((v, i) => v.assign(current[i]));
    tf.dispose(current);
  }
}

/** What one stage's backward returns: the gradient w.r.t. its input (null for stage 1) and per variable. */
export interface StageGradients {
  dxs: Grad[];
  grads: Grad[];
  /** The loss, for the last stage. */
  value?: tf.Scalar;
}

/**
 * The backward of one stage: the VJP of the stage function at (`xs`, the variables'
 * current values), seeded with `dys`; for the last stage (`loss` given) the gradient of
 * the loss. `needDx`: return the gradient w.r.t. the input (every stage but the first).
 */
export function stageBackward(
  segments: readonly Segment[],
  variables: readonly tf.Variable[],
  xs: tf.Tensor[],
  ctx: SegmentContext,
  needDx: boolean,
  head: { loss: LossFn; y: tf.Tensor } | { dys: Grad[] },
): StageGradients {
  const targets = [...(needDx ? xs : []), ...variables];
  const split = (g: Grad[]) => ({ dxs: needDx ? g.slice(0, xs.length) : xs.map(() => null), grads: needDx ? g.slice(xs.length) : g });
  if ('loss' in head) {
    const { value, grads } = valueAndGradients(() => head.loss(head.y, single(runSegments(segments, xs, ctx), 'the last stage')), targets);
    return { ...split(grads), value };
  }
  return split(vectorJacobianProduct(() => runSegments(segments, xs, ctx), targets, head.dys));
}

/** The one tensor a stage hands on; a boundary after a multi-output segment is refused. */
export function single(xs: tf.Tensor[], where: string): tf.Tensor {
  if (xs.length !== 1) {
    throw new TapfitError(
      ErrorCodes.SHAPE,
      `pipeline: ${where} returns ${xs.length} tensors, but stages pass one tensor on (a stage boundary may not cut a reversible or multi-output segment's streams); move the boundary to where the streams are merged.`,
    );
  }
  return xs[0];
}
