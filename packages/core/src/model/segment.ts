import type * as tf from '@tensorflow/tfjs';

/** What a segment's forward may read. */
export interface SegmentContext {
  /** True while training (dropout active, normalisation statistics update). */
  readonly training: boolean;
  /**
   * True when the memory executor re-runs a forward during backward (policy
   * `recompute`). Stateful segments (running statistics, RNG) must not advance then.
   */
  readonly recomputing: boolean;
  /** Number of updates applied so far. */
  readonly step: number;
  /**
   * Which tensor to use for each variable. Absent means the variable itself. Wrappers
   * substitute an effective weight without touching the segment's code: LoRA returns
   * W + s·A·B, weight prediction returns predicted weights. Segments written by hand
   * read their parameters through `readParam(ctx, v)` to support this.
   */
  readonly weights?: (v: tf.Variable) => tf.Tensor;
}

/** The tensor a segment should use for `v` in this forward (see `SegmentContext.weights`). */
export function readParam(ctx: SegmentContext, v: tf.Variable): tf.Tensor {
  return ctx.weights ? ctx.weights(v) : v;
}

/**
 * A piece of the model between two points where activations may be kept, recomputed
 * or reconstructed. Tensor lists let multi-scale networks flow through.
 */
export interface Segment {
  readonly name: string;
  /** Variables this segment reads (trainable or not); trainable ones get gradients. */
  readonly params: tf.Variable[];
  forward(xs: tf.Tensor[], ctx: SegmentContext): tf.Tensor[];
  /** Exact inverse of `forward` (given the same parameters); enables policy `invert`. */
  inverse?(ys: tf.Tensor[], ctx: SegmentContext): tf.Tensor[];
}
