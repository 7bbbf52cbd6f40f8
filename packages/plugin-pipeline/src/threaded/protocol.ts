import type { MessagePort } from 'node:worker_threads';
import type { Compensation } from '../options';
import type { Prediction } from '../weight-prediction';

/** What a stage worker needs to start (its workerData). */
export interface StageInit {
  /** 1-based stage index and the stage count. */
  stage: number;
  stages: number;
  delay: number;
  /** The tfjs-layers topology (model.toJSON()) and this stage's layer range in the segment list. */
  topology: unknown;
  start: number;
  end: number;
  /** Initial values of this stage's trainable variables, in order. */
  weights: Float32Array[];
  /** Expected shape of one input sample (without the batch axis). */
  inputShape: number[];
  loss: string;
  optimizer: { lr: number; momentum: number; weightDecay: number };
  compensation: Compensation;
  prediction: Prediction;
  weightStashing: boolean;
  constraints: 'apply' | 'ignore';
  backend: 'cpu' | 'wasm';
  /** The trainer-style seed of the dropout masks: micro-batch t draws with noiseKey(seed, t). */
  seed: number;
  setupModule?: string;
  /** The micro-batch size given to start (what the warm-up runs at). */
  microBatch: number;
  /** Training passes on zeros, on a throwaway copy of the stage, before 'ready' (worker.ts: warmUp, Stage.rehearse). */
  warmUp: number;
  /** The longest the warm-up may take (a pass that starts before it runs to its end). */
  warmUpMs: number;
  /** Links to the neighbours (absent at the ends). */
  upstream?: MessagePort;
  downstream?: MessagePort;
}

/**
 * Driver -> worker (through parentPort). Inputs and labels travel in chunks of `count`
 * micro-batches starting at `sample` (`shape` is one micro-batch's), so the driver's
 * thread wakes once a chunk, not once a sample: on two cores it competes with the stages.
 */
export type ToStage =
  | { type: 'input'; sample: number; count: number; data: Float32Array; shape: number[] }
  | { type: 'labels'; sample: number; count: number; data: Float32Array; shape: number[]; dtype: 'float32' | 'int32' }
  | { type: 'weights' }
  | { type: 'stats' };

/** Where a stage's time went (milliseconds since it started). */
export interface StageStats {
  stage: number;
  forwardMs: number;
  backwardMs: number;
  forwards: number;
  backwards: number;
  /** The warm-up passes the stage ran during start, and their milliseconds (with building the throwaway copy). */
  warmUpPasses: number;
  warmUpMs: number;
}

/** Worker -> driver. */
export type FromStage =
  | { type: 'ready' }
  /**
   * Stage 1 has applied the gradients of every micro-batch up to and including `through`
   * (sent at the end of each input chunk); `penalties`: the weight penalties of all stages at
   * the updates of the micro-batches since the last 'done', in order (absent: the model has none).
   */
  | { type: 'done'; through: number; penalties?: number[] }
  /** The last stage's losses of micro-batches `sample`, `sample + 1`, ... (sent at the end of each labels chunk). */
  | { type: 'losses'; sample: number; values: number[] }
  | { type: 'weights'; weights: Float32Array[] }
  | { type: 'stats'; stats: StageStats }
  | { type: 'failed'; stage: number; sample: number | null; error: string };
