// What the main thread and a replica worker exchange. The bulk (weights, gradients, the
// worker's slice of the batch) lives in SharedArrayBuffers allocated once and reused;
// the small per-step facts (shapes, the loss, the worker's predictions, an error) travel
// on a MessagePort that both sides read synchronously (receiveMessageOnPort), because
// the main thread blocks in Atomics.wait while the worker computes.
import type { MessagePort } from 'node:worker_threads';

/** Slots of the Int32 control array shared with one worker. */
export const Slot = {
  /** Sequence number of the last step the main thread asked for. */
  REQUEST: 0,
  /** Sequence number of the last step the worker finished (or failed). */
  DONE: 1,
  /** Set to 1 by the worker's exit handler: it is gone. */
  EXITED: 2,
} as const;
export const CONTROL_SLOTS = 4;

/** What a worker needs to start (its workerData). */
export interface ReplicaInit {
  /** 1-based replica index (the main thread is replica 0). */
  replica: number;
  replicas: number;
  /** The tfjs-layers topology (model.toJSON()); the worker rebuilds its own copy. */
  topology: unknown;
  /** A core loss name, or undefined when setupModule must export `loss`. */
  loss: string | undefined;
  setupModule: string | undefined;
  backend: 'wasm' | 'cpu';
  control: SharedArrayBuffer;
  /** Every weight of the model (trainable or not), flat, in `model.weights` order at setup. */
  weights: SharedArrayBuffer;
  /** Int32 per weight, shared by all workers: 1 when the main thread wants its gradient this step. */
  wanted: SharedArrayBuffer;
  /** This worker's gradients, same layout as `weights`. */
  grads: SharedArrayBuffer;
  /** Int32 per weight: 1 when this worker wrote its gradient (a weight with no path to the loss has none). */
  written: SharedArrayBuffer;
  /** The port the worker reads steps from and answers on. */
  port: MessagePort;
}

/** Main -> worker, once per step before the signal. */
export interface StepOrder {
  type: 'step';
  /** Training step number (the segments' ctx.step). */
  step: number;
  /** The part's first row in the whole batch, and its row count. */
  from: number;
  rows: number;
  /** The whole step's noise key (`ctx.noiseKey`): the replica's Dropout layers draw the whole batch's mask rows from it. */
  noiseKey: number;
  xShape: number[];
  xDtype: 'float32' | 'int32';
  yShape: number[];
  yDtype: 'float32' | 'int32';
  /** New shared buffers for x and y, sent when a batch did not fit the old ones. */
  x?: SharedArrayBuffer;
  y?: SharedArrayBuffer;
}

/** Worker -> main. */
export type FromReplica =
  /** Started: the shapes of the weights it built, to check against the main thread's. */
  | { type: 'ready'; shapes: number[][]; hasLoss: boolean }
  /** One step done: the loss of its slice (mean) and its predictions (float32, `predShape`). */
  | { type: 'result'; loss: number; pred: Float32Array; predShape: number[] }
  | { type: 'failed'; error: string };
