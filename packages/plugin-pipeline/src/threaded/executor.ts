import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, fromLayersModel, sgd, TapfitError, trainableVariables, type LossName } from '@tapfit/core';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { microBatchSchema, type Compensation } from '../options';
import { resolveThreadedOptions } from './options';
import { checkSplittable, partitionAt, partitionBalanced, type StageSpec } from '../partition';
import { measureSegmentCosts, measureUpdateCosts } from '../segment-costs';
import { runSegments } from '../stage-math';
import type { Prediction } from '../weight-prediction';
import { KeepAlive } from './keep-alive';
import type { FromStage, StageInit, StageStats, ToStage } from './protocol';
import { messagePortTransport, type Transport } from './transport';

/**
 * How the threaded pipeline splits the model: `stages` (balanced; 2 when neither is given) or
 * `boundaries` (explicit), not both, so `{ stages, boundaries }` does not compile (it is
 * refused at run time too).
 */
export type ThreadedPipelineSplit =
  | {
      /** S, balanced by measured forward and backward time (default 2). */
      stages?: number | undefined;
      boundaries?: undefined;
    }
  | {
      /** The first layer of each stage after the first, by name (S = boundaries.length + 1). */
      boundaries: string[];
      stages?: undefined;
    };

/** ThreadedPipeline.start's options: the split (`ThreadedPipelineSplit`) and these. */
export type ThreadedPipelineOptions = ThreadedPipelineCommonOptions & ThreadedPipelineSplit;

/** ThreadedPipeline.start's options besides the split. */
export interface ThreadedPipelineCommonOptions {
  /**
   * The model (a chain of tfjs-layers layers). Workers build theirs from its JSON topology and
   * its current weights; `syncWeights()` writes the stages' weights back into it, and so does
   * `close()` on a pipeline that has not failed and is not streaming.
   */
  model: tf.LayersModel;
  /**
   * The micro-batch size `train` streams by default (1), and the size at which `stages`
   * are balanced: convolutions and dense layers do not grow alike with the batch, so a
   * split balanced at 1 can be lopsided at 16.
   */
  microBatch?: number | undefined;
  /** A core loss name (functions cannot cross threads; a setupModule may export `loss`). */
  loss: LossName;
  /** SGD with PyTorch-form momentum, as core's sgd(). */
  optimizer: { lr: number; momentum: number; weightDecay?: number | undefined };
  compensation?: Compensation | undefined;
  prediction?: Prediction | undefined;
  extraDelay?: number | undefined;
  weightStashing?: boolean | undefined;
  /** The model's weight constraints (`kernelConstraint`, ...): 'apply' (default) projects each after its stage's update, as the trainer does; 'ignore' as tfjs's model.fit. */
  constraints?: 'apply' | 'ignore' | undefined;
  /**
   * Seeds the dropout masks (0 by default), as the trainer's `seed` does: micro-batch t's masks
   * follow (seed, t, layer), so a stage's backward of t replays t's forward masks, and the run
   * equals the simulator's in a trainer with the same seed.
   */
  seed?: number | undefined;
  /** The workers' backend; default 'wasm'. */
  backend?: 'cpu' | 'wasm' | undefined;
  /** A module each worker loads first (with import(): CommonJS or ESM, top-level await included), as an absolute path or a file: URL: may export `setup({ stage })` (register custom layers), `loss`, and `onSample({ stage, sample, phase })`. */
  setupModule?: string | undefined;
  /** A stage whose worker is not ready (TF.js loaded, setupModule's setup run, model built) within this many ms fails the start; default 120000, as asyncTrain's. */
  startTimeoutMs?: number | undefined;
  /**
   * Passes of each stage's per-sample work (forward, backward, update) that its worker runs
   * during `start`, on zeros and on a throwaway copy of its layers, so that the first samples
   * of `train` do not run cold code (a fresh thread's JavaScript is slow until V8 has
   * optimised it); default 300. 0 skips it: `start` is quicker, the first samples slower.
   * The weights, optimizer state, layer state and dropout draws of the run are not touched.
   */
  warmUp?: number | undefined;
  /**
   * The longest each stage's warm-up may take, in ms (a pass that has started runs to its
   * end); default 1500. V8 keeps optimising a fresh thread's code over its first few
   * thousand passes, so a larger `warmUp` with a larger budget makes the first samples of
   * `train` faster at the cost of a slower `start` (see the README, *Threaded speedup*).
   */
  warmUpMs?: number | undefined;
  /** How neighbouring stages talk; default worker_threads MessagePorts. */
  transport?: Transport | undefined;
}

type Pending = { resolve: () => void; reject: (e: Error) => void };

/** Micro-batches per input chunk: at most this many, and at most CHUNK_BYTES of inputs. */
const MAX_CHUNK = 16;
const CHUNK_BYTES = 4 << 20;

/**
 * Real pipeline parallelism: one worker thread (one TF.js) per stage, activations sent
 * forward and gradients backward as transferred Float32Array buffers, every stage
 * updating as soon as its gradient arrives. A stage runs the forward of micro-batch t at
 * its weights of D_s updates ago (it waits for its backwards until that version exists)
 * and the backward at its current weights, so the weights equal those of the one-process
 * simulator for the same samples in the same order. A failing stage stops the pipeline
 * with an error naming the stage and the sample; nothing is retried or applied twice.
 */
export class ThreadedPipeline {
  private readonly workers: Worker[] = [];
  /** Holds node open while a call waits for the workers, not while they idle. */
  private readonly alive = new KeepAlive(this.workers);
  /** Losses by micro-batch until `train` hands them back (then dropped: a long run keeps none). */
  private readonly losses = new Map<number, number>();
  private lossesReceived = 0;
  /** The weight penalties (regularizers) of all stages per micro-batch, added to its loss as the trainer does. */
  private readonly penalties = new Map<number, number>();
  private done = 0;
  private failure?: TapfitError;
  private waiting?: Pending;
  /** Requests to the workers (stats, weights) awaiting their reply: rejected when the pipeline fails or closes. */
  private readonly asking = new Set<(e: Error) => void>();
  /** Set by close(): every later call is refused with it. */
  private closedError?: TapfitError;
  /** close()'s run (write the weights back, then stop), shared by repeated calls. */
  private closing?: Promise<void>;
  /** The workers' termination, started once (by close() or by a failure). */
  private stopping?: Promise<void>;
  private closed = false;
  private sent = 0;
  private training = false;

  private constructor(
    readonly stages: readonly StageSpec[],
    private readonly model: tf.LayersModel,
    private readonly inputShape: number[],
    private readonly microBatch: number,
  ) {}

  static async start(given: ThreadedPipelineOptions): Promise<ThreadedPipeline> {
    const options = resolveThreadedOptions(given);
    const { model, microBatch } = options;
    const trainable = fromLayersModel(model);
    const names = trainable.segments.map((s) => s.name);
    const inputShape = (model.inputs[0].shape.slice(1) as number[]).map((d) => d ?? 1);
    checkSplittable(options.boundaries ? options.boundaries.length + 1 : (options.stages ?? 2), names.length, trainable.unsplitReason);
    const stages = ((): StageSpec[] => {
      if (options.boundaries) return partitionAt(names, options.boundaries, options.extraDelay);
      const S = options.stages ?? 2;
      if (S > names.length) return partitionBalanced(names, names.map(() => 1), S, options.extraDelay);
      // What each stage runs per sample: a stage with D_s > 0 a forward at its old weights plus a
      // recomputed forward, the backward and the update, and it records its weights and builds
      // the forward's (about one update more); the last stage (D_S = 0) one forward, the
      // backward and the update.
      const probe = tf.zeros([microBatch, ...inputShape]);
      try {
        const { forward, backward } = measureSegmentCosts(trainable.segments, probe);
        const { lr, momentum, weightDecay } = options.optimizer;
        const update = measureUpdateCosts(trainable.segments, sgd({ lr, momentum, weightDecay }).transforms);
        const delayed = forward.map((f, i) => 2 * f + backward[i] + 2 * update[i]);
        const last = options.extraDelay > 0 ? delayed : forward.map((f, i) => f + backward[i] + update[i]);
        return partitionBalanced(names, delayed, S, options.extraDelay, last);
      } finally {
        probe.dispose();
      }
    })();
    const shapes = stageInputShapes(trainable.segments, stages, inputShape);
    const vars = new Set(trainableVariables(trainable));
    const transport = options.transport ?? messagePortTransport;
    const links = stages.slice(1).map(() => transport.pair());
    const pipe = new ThreadedPipeline(stages, model, inputShape, microBatch);
    const topology = model.toJSON(null, false);
    const ready = stages.map((s, i) => {
      const own = [...new Set(trainable.segments.slice(s.start, s.end).flatMap((seg) => seg.params))].filter((v) => vars.has(v));
      const init: StageInit = {
        stage: s.index,
        stages: stages.length,
        delay: s.delay,
        topology,
        start: s.start,
        end: s.end,
        weights: own.map((v) => Float32Array.from(v.dataSync())),
        inputShape: shapes[i],
        loss: options.loss,
        optimizer: { lr: options.optimizer.lr, momentum: options.optimizer.momentum, weightDecay: options.optimizer.weightDecay ?? 0 },
        compensation: options.compensation,
        prediction: options.prediction,
        weightStashing: options.weightStashing,
        constraints: options.constraints,
        backend: options.backend,
        seed: options.seed,
        setupModule: options.setupModule,
        microBatch,
        warmUp: options.warmUp,
        warmUpMs: options.warmUpMs,
        upstream: i > 0 ? links[i - 1].downstream : undefined,
        downstream: i < stages.length - 1 ? links[i].upstream : undefined,
      };
      const transfer = [init.upstream, init.downstream].filter((p) => p !== undefined);
      const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: init, transferList: transfer });
      pipe.workers.push(worker);
      return pipe.watch(worker, s.index, options.startTimeoutMs);
    });
    try {
      await Promise.all(ready);
    } catch (err) {
      await pipe.stop();
      throw err;
    }
    pipe.alive.idle();
    return pipe;
  }

  /** Resolves when the worker says ready (failing the start after `startTimeoutMs`); afterwards routes its messages. */
  private watch(worker: Worker, stage: number, startTimeoutMs: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let ready = false;
      const notReady = setTimeout(() => {
        reject(this.fail(`pipeline stage ${stage} was not ready within ${startTimeoutMs} ms (startTimeoutMs): its start (loading TF.js, setupModule's setup, building the model) did not finish; raise startTimeoutMs if it is only slow`, ''));
      }, startTimeoutMs);
      worker.once('exit', () => clearTimeout(notReady));
      worker.on('message', (m: FromStage) => {
        if (m.type === 'ready') {
          ready = true;
          clearTimeout(notReady);
          resolve();
        } else if (m.type === 'failed') {
          const err = this.fail(`pipeline stage ${m.stage} failed${m.sample === null ? ' at start' : ` on sample ${m.sample}`}: ${m.error.split('\n')[0]}`, m.error);
          reject(err);
        } else if (m.type === 'losses') {
          m.values.forEach((v, i) => this.losses.set(m.sample + i, v));
          this.lossesReceived += m.values.length;
          this.wake();
        } else if (m.type === 'done') {
          m.penalties?.forEach((p, i) => this.penalties.set(m.through + 1 - m.penalties!.length + i, p));
          this.done = m.through + 1;
          this.wake();
        }
      });
      worker.on('error', (e) => reject(this.fail(`pipeline stage ${stage} crashed: ${e.message}`, e.stack ?? '')));
      worker.on('exit', (code) => {
        if (!this.closed) reject(this.fail(`pipeline stage ${stage}'s worker exited (code ${code}) ${exitedWith(ready, code, this.done, this.sent)}`, ''));
      });
    });
  }

  private fail(message: string, detail: string): TapfitError {
    if (!this.failure) {
      this.failure = new TapfitError(ErrorCodes.PLUGIN_FAILED, `${message}. The pipeline was stopped; no update was retried or applied twice. Fix the stage and start again.`, { cause: detail });
      void this.stop();
    }
    this.rejectWaiters(this.failure);
    return this.failure;
  }

  private rejectWaiters(err: Error): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.reject(err);
    for (const reject of [...this.asking]) reject(err);
    this.asking.clear();
  }

  private wake(): void {
    const w = this.waiting;
    this.waiting = undefined;
    w?.resolve();
  }

  private until(condition: () => boolean): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = () => {
        const refused = this.refusal();
        if (refused) return reject(refused);
        if (condition()) return resolve();
        this.waiting = { resolve: check, reject };
      };
      check();
    });
  }

  /**
   * Streams the samples of `x`, `y` (sample axis first) through the pipeline in order, in
   * micro-batches of `microBatch` (default: the one given to `start`); resolves with the
   * loss of each micro-batch (with the model's weight penalties, as the trainer's) when
   * every stage has applied every gradient.
   */
  async train(x: tf.Tensor, y: tf.Tensor, options: { microBatch?: number | undefined } = {}): Promise<number[]> {
    this.checkUsable();
    if (this.training) throw new TapfitError(ErrorCodes.STATE, 'pipeline: train() was called while an earlier train() is still streaming; await it first (one stream at a time keeps the samples in order).');
    this.training = true;
    try {
      return await this.alive.during(() => this.stream(x, y, options.microBatch ?? this.microBatch));
    } finally {
      this.training = false;
    }
  }

  private async stream(x: tf.Tensor, y: tf.Tensor, mb: number): Promise<number[]> {
    checkMicroBatch(mb, 'train: microBatch');
    const n = x.shape[0];
    if (n % mb !== 0) {
      throw new TapfitError(ErrorCodes.CONFIG, `pipeline stage 1 cannot stream ${n} samples in micro-batches of ${mb}: every micro-batch must have the same size; use a microBatch that divides the sample count.`);
    }
    if (x.shape.slice(1).join(',') !== this.inputShape.join(',')) {
      throw new TapfitError(ErrorCodes.SHAPE, `pipeline stage 1 takes samples of shape [${this.inputShape}], got [${x.shape.slice(1)}].`);
    }
    if (x.dtype !== 'float32') throw new TapfitError(ErrorCodes.CONFIG, `pipeline stage 1 streams float32 inputs, got ${x.dtype}; cast x with tf.cast(x, 'float32').`);
    if (y.shape[0] !== n) {
      throw new TapfitError(ErrorCodes.SHAPE, `pipeline stage ${this.stages.length} needs one label per sample: x has ${n} samples but y has ${y.shape[0]}; pass labels for exactly the samples of x.`);
    }
    const first = this.sent;
    const xs = x.dataSync() as Float32Array;
    const ys = y.dataSync();
    const xSize = (x.size / n) * mb; // values per micro-batch
    const ySize = (y.size / n) * mb;
    const batches = n / mb;
    // Chunks of micro-batches, at most two in flight (and never fewer than stage 1's delay + 2 micro-batches).
    const chunk = Math.max(1, Math.min(MAX_CHUNK, Math.floor(CHUNK_BYTES / (4 * xSize))));
    const window = Math.max(2 * chunk, this.stages[0].delay + 2);
    for (let k = 0; k < batches; ) {
      const count = Math.min(chunk, batches - k);
      await this.until(() => this.sent - this.done + count <= window);
      const t = this.sent;
      this.sent += count;
      const labels = Float32Array.from(ys.subarray(k * ySize, (k + count) * ySize) as ArrayLike<number>);
      this.post(this.workers.length - 1, { type: 'labels', sample: t, count, data: labels, shape: [mb, ...y.shape.slice(1)], dtype: y.dtype === 'int32' ? 'int32' : 'float32' });
      this.post(0, { type: 'input', sample: t, count, data: xs.slice(k * xSize, (k + count) * xSize), shape: [mb, ...this.inputShape] });
      k += count;
    }
    // Messages of different workers arrive in no fixed order: wait for the last stage's losses too.
    await this.until(() => this.done === this.sent && this.lossesReceived === this.sent);
    return Array.from({ length: this.sent - first }, (_, i) => {
      const t = first + i;
      const value = (this.losses.get(t) ?? NaN) + (this.penalties.get(t) ?? 0);
      this.losses.delete(t);
      this.penalties.delete(t);
      return value;
    });
  }

  private post(worker: number, m: ToStage): void {
    this.workers[worker].postMessage(m, 'data' in m ? [m.data.buffer as ArrayBuffer] : []);
  }

  /** Where each stage's time went (busy milliseconds in forwards and backwards). */
  async stats(): Promise<StageStats[]> {
    this.checkUsable();
    return this.alive.during(() => Promise.all(this.workers.map((w) => this.ask<StageStats>(w, { type: 'stats' }, (m) => (m.type === 'stats' ? m.stats : undefined)))));
  }

  private ask<T>(w: Worker, request: ToStage, pick: (m: FromStage) => T | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const on = (m: FromStage) => {
        const v = pick(m);
        if (v === undefined) return;
        done();
        resolve(v);
      };
      const stop = (e: Error) => {
        done();
        reject(e);
      };
      const done = () => {
        w.off('message', on);
        this.asking.delete(stop);
      };
      this.asking.add(stop);
      w.on('message', on);
      w.postMessage(request);
    });
  }

  /** Each stage's current weights, written into the model's variables. */
  async syncWeights(): Promise<void> {
    this.checkUsable();
    await this.alive.during(() => this.pullWeights());
  }

  private async pullWeights(): Promise<void> {
    const trainable = fromLayersModel(this.model);
    const vars = new Set(trainableVariables(trainable));
    const replies = await Promise.all(this.workers.map((w) => this.ask(w, { type: 'weights' }, (m) => (m.type === 'weights' ? m.weights : undefined))));
    this.stages.forEach((s, i) => {
      const own = [...new Set(trainable.segments.slice(s.start, s.end).flatMap((seg) => seg.params))].filter((v) => vars.has(v));
      own.forEach((v, k) => tf.tidy(() => v.assign(tf.tensor(replies[i][k], v.shape))));
    });
  }

  /**
   * Ends the pipeline. Later calls (train, stats, syncWeights) are refused and any still
   * waiting is rejected. On a healthy pipeline it then writes the stages' weights into the
   * model, as `syncWeights()`, and stops every worker. A pipeline that failed, or one closed
   * while a `train()` streams (its stages are mid-stream, not at one sample), is only stopped:
   * the model keeps the weights of the last `syncWeights()`.
   */
  close(): Promise<void> {
    this.closing ??= this.alive.during(() => this.closeOnce());
    return this.closing;
  }

  private async closeOnce(): Promise<void> {
    const healthy = !this.failure && !this.training;
    this.closedError = new TapfitError(ErrorCodes.STATE, 'pipeline: this ThreadedPipeline is closed; start a new one (ThreadedPipeline.start) to train again.');
    this.rejectWaiters(this.closedError);
    try {
      // A model the caller disposed first (a `finally` that frees it) has nowhere to take them.
      if (healthy && !isDisposed(this.model)) await this.pullWeights();
    } finally {
      await this.stop();
    }
  }

  /** Terminates every worker (once); a worker that exits from now on is no failure. */
  private stop(): Promise<void> {
    this.closed = true;
    this.stopping ??= Promise.all(this.workers.map((w) => w.terminate())).then(() => undefined);
    return this.stopping;
  }

  /** Why calls are refused now: the failure, else close(). */
  private refusal(): TapfitError | undefined {
    return this.failure ?? this.closedError;
  }

  private checkUsable(): void {
    const refused = this.refusal();
    if (refused) throw refused;
  }
}

/** What a stage was doing when its worker exited: starting, idle, or samples `done`..`sent - 1` in flight. */
function exitedWith(ready: boolean, code: number, done: number, sent: number): string {
  if (!ready) {
    // Exit code 0 before 'ready': the worker ran out of work, its start still pending.
    return `at start, before it was ready${code === 0 ? ": its setup ended without the stage becoming ready (does setupModule's setup return a promise that never settles?)" : ''}`;
  }
  return sent > done ? `with samples ${done}..${sent - 1} in flight` : 'with no samples in flight';
}

/** Whether the model's weights were disposed (model.dispose()): reading one throws then. */
function isDisposed(model: tf.LayersModel): boolean {
  try {
    for (const w of model.weights) w.read();
    return false;
  } catch {
    return true;
  }
}

/** The plugin's micro-batch rule (options.ts), with the error naming `where`. */
function checkMicroBatch(mb: unknown, where: string): void {
  const checked = microBatchSchema.safeParse(mb);
  if (!checked.success) throw new TapfitError(ErrorCodes.CONFIG, `pipeline: ${where} ${checked.error.issues[0].message}, got ${String(mb)}.`);
}

/** The per-sample input shape of each stage, from one inference forward on zeros. */
function stageInputShapes(segments: readonly import('@tapfit/core').Segment[], stages: readonly StageSpec[], inputShape: number[]): number[][] {
  return tf.tidy(() => {
    const ctx = { training: false, recomputing: false, step: 0 };
    let xs: tf.Tensor[] = [tf.zeros([1, ...inputShape])];
    return stages.map((s, i) => {
      if (xs.length !== 1) throw new TapfitError(ErrorCodes.SHAPE, `pipeline: stage ${i} returns ${xs.length} tensors; a boundary may not cut a multi-output segment.`);
      const shape = xs[0].shape.slice(1);
      xs = runSegments(segments.slice(s.start, s.end), xs, ctx);
      return shape;
    });
  });
}
