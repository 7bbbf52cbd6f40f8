import type * as tf from '@tensorflow/tfjs';
import type { NamedTensors } from '../tensors';

/**
 * State of one transform: tensors (per-parameter buffers such as a velocity), numbers
 * (counters) and nested records of either. It is plain data so that the trainer can
 * keep, dispose, inspect and serialise it without knowing the transform.
 */
export type TransformState = { [key: string]: TransformStateValue };
export type TransformStateValue = tf.Tensor | number | NamedTensors | TransformState;

/** What every transform may read besides gradients and state. */
export interface StepContext {
  /** Number of updates applied before this one (0 on the first step). */
  readonly step: number;
  /**
   * Present when the caller applies the updates itself (transformStep) and can fold a final
   * scalar factor into the parameter write, p + s u in one pass instead of two: only the
   * transform `target` may set `scale` and then return its updates unscaled. A chain hands
   * it on to its last member; every other transform ignores it.
   */
  readonly fold?: ScaleFold;
}

/** The scalar a step's last transform left for the parameter write (see StepContext.fold). */
export interface ScaleFold {
  target: StepTransform;
  scale: number;
}

/**
 * An optax-style gradient transformation. `update` maps incoming updates (at the head
 * of a chain: the gradients) to outgoing updates, which the trainer ADDS to the
 * parameters (so sgd emits `-lr * g`). It must be pure: return a new state rather than
 * mutating the old one; the trainer keeps the returned tensors and disposes the old ones.
 */
export interface StepTransform<S extends TransformState = TransformState> {
  /** Unique within a chain; names the transform's slot in the chain state. */
  readonly name: string;
  /**
   * The options the transform was built with (optax's inject_hyperparams idea), so a
   * plugin that replaces or wraps it reads them instead of guessing: momentum()'s
   * `{ momentum, dampening, nesterov }`, scaleByLearningRate's `{ lr }`, ...
   */
  readonly hyperparams?: Readonly<Hyperparams>;
  init(params: NamedTensors): S;
  update(updates: NamedTensors, state: S, params: NamedTensors, ctx: StepContext): [NamedTensors, S];
}

/** A transform's visible options: numbers, flags, names or schedules. */
export type Hyperparams = Record<string, number | boolean | string | Schedule>;

/** A learning-rate (or any hyperparameter) schedule: step count -> value. */
export type Schedule = (step: number) => number;
