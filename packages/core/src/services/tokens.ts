import type * as tf from '@tensorflow/tfjs';
import type { InjectionToken } from 'tsyringe';
import type { MemoryPlan } from '../memory/plan';
import type { StepInput } from '../memory/step-input';
import type { ModelInfo } from '../hooks/types';
import type { TrainableModel } from '../model/trainable-model';
import type { NamedTensors } from '../tensors';
import type { StepTransform } from '../transforms/types';

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
}

/** Scalar loss of a batch: mean over the batch. */
export type LossFn = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar;

/** A metric reported by `evaluate` and per epoch: batch mean of `fn`. */
export interface Metric {
  readonly name: string;
  fn(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar;
}

/** What the user passed as optimizer: a transform chain or a black-box tf.train optimizer. */
export type OptimizerSpec = StepTransform | readonly StepTransform[] | tf.Optimizer;

/** Picks the per-segment policies (the default keeps everything: all `store`). */
export interface MemoryPlanner {
  plan(info: ModelInfo): MemoryPlan;
}

/**
 * Computes the loss and the gradients of the trainable variables for one step. The
 * default is plain autodiff over the whole forward; the memory executor replaces it.
 */
export interface Backprop {
  compute(
    loss: (forward: () => tf.Tensor) => tf.Scalar,
    forward: () => tf.Tensor,
    variables: readonly tf.Variable[],
    model: TrainableModel,
    plan: MemoryPlan,
    /** The first segment's input and context, when the trainer can hand them over (no `forward` taps). */
    input?: StepInput,
  ): { value: tf.Scalar; grads: NamedTensors };
}

/** Saves and restores checkpoints (default: FileCheckpointer, atomic folders on disk). */
export interface Checkpointer {
  /** Stores one checkpoint under `root` atomically; returns where. */
  save(root: string, step: number, files: { manifest: unknown; tensors: Buffer }): Promise<string>;
  /** Reads the newest complete checkpoint under `root`. */
  load(root: string): Promise<{ manifest: unknown; tensors: Buffer; dir: string }>;
}

/** The backend the trainer runs on, as chosen by `selectBackend`. */
export interface BackendInfo {
  readonly name: string;
  readonly reason?: string;
}

/**
 * Injection tokens of the services one trainer owns. Each trainer has its own child
 * container, so two trainers in one process share nothing. Plugins may register or
 * decorate any of these in `apply` (see `PluginApi.services`).
 */
export const Tokens = {
  Backend: Symbol('tapfit.Backend') as InjectionToken<BackendInfo>,
  Model: Symbol('tapfit.Model') as InjectionToken<TrainableModel>,
  Optimizer: Symbol('tapfit.Optimizer') as InjectionToken<OptimizerSpec>,
  Loss: Symbol('tapfit.Loss') as InjectionToken<LossFn>,
  Logger: Symbol('tapfit.Logger') as InjectionToken<Logger>,
  Clock: Symbol('tapfit.Clock') as InjectionToken<Clock>,
  Checkpointer: Symbol('tapfit.Checkpointer') as InjectionToken<Checkpointer>,
  MemoryPlanner: Symbol('tapfit.MemoryPlanner') as InjectionToken<MemoryPlanner>,
  Metrics: Symbol('tapfit.Metrics') as InjectionToken<readonly Metric[]>,
  Backprop: Symbol('tapfit.Backprop') as InjectionToken<Backprop>,
} as const;
