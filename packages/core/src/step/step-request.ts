import type * as tf from '@tensorflow/tfjs';
import type { Segment, SegmentContext } from '../model/segment';
import type { NamedTensors } from '../tensors';
import type { MemoryPlan } from './memory-plan';

/** Scalar loss of a batch: mean over the batch. */
export type LossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar;

/** Everything a `Backprop` needs for one step: the batch, the forward as data, what to differentiate. */
export interface StepRequest {
  readonly x: tf.Tensor;
  readonly y: tf.Tensor;
  /** The segments to run (after `forward` taps), in order; the first takes `[x]`, the last returns the prediction. */
  readonly segments: readonly Segment[];
  readonly ctx: SegmentContext;
  /** The variables to differentiate (the trainable ones). */
  readonly variables: readonly tf.Variable[];
  /** Per-segment policies (store, recompute, invert), by segment name. */
  readonly plan: MemoryPlan;
  readonly loss: LossFn;
}

/** The loss and the gradients of `variables`, keyed by variable name (a variable with no path to the loss is absent). */
export interface StepGradients {
  value: tf.Scalar;
  grads: NamedTensors;
}
