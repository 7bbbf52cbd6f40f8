// Messages between asyncTrain (main thread) and its gradient workers. Weights and
// gradients travel as Float32Arrays in the model's trainableWeights order, buffers
// (non-trainable weights such as BatchNorm moving statistics) in nonTrainableWeights order.

/** What a worker needs to start (its workerData). */
export interface WorkerInit {
  index: number;
  /** The model's tfjs-layers JSON topology; the worker builds its own copy from it. */
  topology: object;
  /** A core loss name; a `loss` exported by setupModule wins. */
  loss: string;
  setupModule?: string;
  backend: 'wasm' | 'cpu';
  data: SharedData;
  /** This worker's shard: sample indices into `data`. */
  shard: Int32Array;
  batchSize: number;
  /** Shuffling seed, and the trainer seed of core's dropout rule (noiseKey). */
  seed: number;
  /** How many workers the run has: worker `index`'s n-th batch is the run's batch serial n * workers + index. */
  workers: number;
}

/** The training set in shared memory, so workers read it without copies. */
export interface SharedData {
  x: SharedArrayBuffer;
  xShape: number[];
  y: SharedArrayBuffer;
  yShape: number[];
  yDtype: 'float32' | 'int32';
}

export type ToWorker =
  /** Compute one gradient on these weights and buffers (the master's after `version` updates). */
  { type: 'compute'; id: number; version: number; weights: Float32Array[]; buffers: Float32Array[] };

export type FromWorker =
  | { type: 'ready'; shapes: number[][]; bufferShapes: number[][] }
  /** `bufferDeltas`: how the forward pass changed the buffers it was sent (after - before). */
  | { type: 'gradient'; id: number; version: number; grads: Float32Array[]; bufferDeltas: Float32Array[]; loss: number; computeMs: number }
  /** `everyWorker`: the failure does not depend on the worker (the model cannot be rebuilt from its topology), so every worker would report it. */
  | { type: 'failed'; error: string; everyWorker?: boolean };
