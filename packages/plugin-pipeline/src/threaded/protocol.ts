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
  backend: 'cpu' | 'wasm';
  setupModule?: string;
  /** Links to the neighbours (absent at the ends). */
  upstream?: MessagePort;
  downstream?: MessagePort;
}

/** Driver -> worker (through parentPort). */
export type ToStage =
  | { type: 'input'; sample: number; data: Float32Array; shape: number[] }
  | { type: 'labels'; sample: number; data: Float32Array; shape: number[]; dtype: 'float32' | 'int32' }
  | { type: 'weights' }
  | { type: 'stats' };

/** Where a stage's time went (milliseconds since it started). */
export interface StageStats {
  stage: number;
  forwardMs: number;
  backwardMs: number;
  forwards: number;
  backwards: number;
}

/** Worker -> driver. */
export type FromStage =
  | { type: 'ready' }
  | { type: 'done'; sample: number }
  | { type: 'loss'; sample: number; value: number }
  | { type: 'weights'; weights: Float32Array[] }
  | { type: 'stats'; stats: StageStats }
  | { type: 'failed'; stage: number; sample: number | null; error: string };
