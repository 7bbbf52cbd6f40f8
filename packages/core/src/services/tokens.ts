import type * as tf from '@tensorflow/tfjs';
import type { InjectionToken } from 'tsyringe';
import type { ModelInfo } from '../hooks/types';
import type { MemoryPlan } from '../step/memory-plan';
import type { LossFn, StepGradients, StepRequest } from '../step/step-request';
import type { OptimizerName } from '../transforms/by-name';
import type { StepTransform } from '../transforms/types';

export type { LossFn };

export interface Logger {
  info(message: string): void;
  warn(message: string): void;
}

/** A resolved metric, reported by `evaluate` and per epoch: `fn` returns the batch mean (resolveMetrics averages per-sample values). */
export interface Metric {
  readonly name: string;
  fn(yTrue: tf.Tensor, yPred: tf.Tensor): tf.Scalar;
}

/**
 * What the user passed as optimizer: a transform chain, an optimizer name as model.compile
 * takes it ('adam', 'rmsprop', ...; the trainer builds its chain at setup) or a black-box
 * tf.train optimizer.
 */
// `(string & {})`: a name held in a `string` (model.compile's type) still compiles, while editors offer the names.
export type OptimizerSpec = StepTransform | readonly StepTransform[] | tf.Optimizer | OptimizerName | (string & {});

/** Picks the per-segment policies (the default keeps everything: all `store`). */
export interface MemoryPlanner {
  plan(info: ModelInfo): MemoryPlan;
}

/**
 * Computes the loss and the gradients of the trainable variables for one step, running
 * exactly the request's segments in the request's context. The default realises the
 * memory plan: plain autodiff when every segment is `store`, the segment-by-segment
 * executor otherwise. A plugin that replaces it (a pipeline) declares
 * `provides: [Tokens.Backprop]`. Runs inside the step's tf.tidy. During fit the request's
 * loss also computes the metrics; when it is called more than once, fit logs the metrics of
 * the last call, so a Backprop calls last the loss whose value it returns.
 */
export interface Backprop {
  compute(request: StepRequest): StepGradients;
  /** What it runs, for `trainer.describe()` ('stage simulator'). */
  readonly description?: string;
  /**
   * True when it runs the segments as the memory plan says (core's default and
   * SegmentExecutor do). `describe()` prints a provider's per-segment plan only then.
   */
  readonly realisesMemoryPlan?: boolean;
  /** Where the plan holds when it realises it for part of the step only ("the main thread's part"), for `describe()`. */
  readonly memoryPlanScope?: string;
}

/** Saves and restores checkpoints (default: FileCheckpointer, atomic folders on disk). */
export interface Checkpointer {
  /** Stores one checkpoint under `root` atomically; returns where. */
  save(root: string, step: number, files: { manifest: unknown; tensors: Buffer }): Promise<string>;
  /** Reads the newest complete checkpoint under `root`. */
  load(root: string): Promise<{ manifest: unknown; tensors: Buffer; dir: string }>;
}

/**
 * Injection tokens of the services one trainer owns. Each trainer has its own child
 * container, so two trainers in one process share nothing. Plugins may decorate any of
 * these in `apply`, and replace one only when they declare it in `provides` (see
 * `PluginApi.services`), so two plugins cannot silently replace the same service.
 */
export const Tokens = {
  Optimizer: Symbol('tapfit.Optimizer') as InjectionToken<OptimizerSpec>,
  Loss: Symbol('tapfit.Loss') as InjectionToken<LossFn>,
  Logger: Symbol('tapfit.Logger') as InjectionToken<Logger>,
  Checkpointer: Symbol('tapfit.Checkpointer') as InjectionToken<Checkpointer>,
  MemoryPlanner: Symbol('tapfit.MemoryPlanner') as InjectionToken<MemoryPlanner>,
  Metrics: Symbol('tapfit.Metrics') as InjectionToken<readonly Metric[]>,
  Backprop: Symbol('tapfit.Backprop') as InjectionToken<Backprop>,
} as const;

/** A token's readable name ('Backprop' for Tokens.Backprop), for errors and describe(). */
export function tokenName(token: InjectionToken<unknown>): string {
  if (typeof token === 'symbol') return token.description?.replace(/^tapfit\./, '') ?? token.toString();
  return typeof token === 'function' ? token.name : String(token);
}
