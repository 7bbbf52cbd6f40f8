import type * as tf from '@tensorflow/tfjs';
import type { SegmentContext } from '@tapfit/core';

/**
 * A differentiable map with its own parameters: F and G of a coupling, f_{i->j} and
 * g_{j->i} of a RevSilo (docs/techniques.md §2.2-§2.3). It need not be invertible, but
 * it must be a function of its input and parameters: the same values in every forward of
 * a step (a replayed forward included; see `replayedUniform` and `Norm`).
 */
export interface Transform {
  readonly name: string;
  /** Variables it reads (trainable or not). */
  readonly params: tf.Variable[];
  apply(x: tf.Tensor, ctx: SegmentContext): tf.Tensor;
  /** Frees state it keeps between forwards (kept normalisation statistics). */
  dispose?(): void;
}

/** A transform from a plain function (and the variables it reads). */
export function transform(name: string, apply: (x: tf.Tensor, ctx: SegmentContext) => tf.Tensor, params: tf.Variable[] = []): Transform {
  return { name, params, apply };
}
