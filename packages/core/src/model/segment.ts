import type * as tf from '@tensorflow/tfjs';

/** What a segment's forward may read. */
export interface SegmentContext {
  /** True while training (dropout active, normalisation statistics update). */
  readonly training: boolean;
  /**
   * True when the memory executor re-runs a forward or rebuilds an input during backward
   * (policies `recompute`, `invert`). Stateful segments (running statistics, RNG) must
   * not advance then, and must reproduce the original forward's values.
   */
  readonly recomputing: boolean;
  /** Number of updates applied so far. */
  readonly step: number;
  /**
   * Identifies this training forward's randomness (`noiseKey(trainer seed, batch serial)`):
   * the same for the forward and every replay of it (a recompute, a pipeline stage's
   * backward), different between batches. A segment that draws noise seeds each draw with
   * `noiseSeed(ctx, name, draw)` instead of drawing unseeded, so replays, resumed runs and
   * other processes with the same seed draw the same masks. Absent outside training and in
   * contexts made by hand (`noiseSeed` then keys by `step`).
   */
  readonly noiseKey?: number | undefined;
  /**
   * Which tensor to use for each variable. Absent means the variable itself. Wrappers
   * substitute an effective weight without touching the segment's code: LoRA returns
   * W + s·A·B, weight prediction returns predicted weights. Segments written by hand
   * read their parameters through `readParam(ctx, v)` to support this.
   */
  readonly weights?: ((v: tf.Variable) => tf.Tensor) | undefined;
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
  /**
   * Why a second run of `forward` cannot reproduce the first (noise drawn without a seed,
   * a recurrent state carried between calls), when it cannot: the memory planner then keeps
   * the segment `store`, and a plan that recomputes or inverts it is refused, naming this.
   */
  readonly notReplayable?: string | undefined;
  /** Exact inverse of `forward` (given the same parameters); enables policy `invert`. */
  inverse?(ys: tf.Tensor[], ctx: SegmentContext): tf.Tensor[];
  /**
   * Optional, with `inverse`: rebuilds the input from the output `ys` and computes the
   * vector-Jacobian product with the output gradients `dys` in the same pass (RevNet's
   * backward, docs/techniques.md §3.3), so policy `invert` evaluates the segment once
   * more instead of twice (inverse, then a taped forward). `variables` are the ones of
   * `params` that get gradients. Called with `ctx.recomputing` true. Must give what
   * `inverse` followed by autodiff of `forward` gives; `vjp` differentiates the parts.
   */
  backward?(ys: tf.Tensor[], dys: (tf.Tensor | null)[], variables: readonly tf.Variable[], ctx: SegmentContext): SegmentBackward;
}

/** What `Segment.backward` returns. */
export interface SegmentBackward {
  /** The segment's input, rebuilt from its output. */
  readonly xs: tf.Tensor[];
  /** The loss gradient w.r.t. each input (null where none flows). */
  readonly dxs: (tf.Tensor | null)[];
  /** The loss gradient w.r.t. each of `variables`, in order (null where none flows). */
  readonly grads: (tf.Tensor | null)[];
}
