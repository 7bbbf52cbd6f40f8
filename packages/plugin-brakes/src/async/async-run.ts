import * as tf from '@tensorflow/tfjs';
import { ChainStepper, ErrorCodes, TapfitError, type Logger, type NamedTensors, type StepTransform } from '@tapfit/core';
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { describeFailures } from './failure-summary';
import { GradientLedger } from './ledger';
import type { ResolvedAsyncTrainOptions } from './options';
import type { FromWorker, ToWorker, WorkerInit } from './protocol';
import { StalenessRecorder, type StalenessStats } from './staleness';

export const ASYNC_WORKERS_FAILED = 'TAPFIT_E_ASYNC_WORKERS';

export interface WorkerReport {
  index: number;
  /** Gradients of this worker that were applied. */
  applied: number;
  /** Why the worker was stopped early (crash, exit, timeout, error), if it was. */
  failure?: string;
}

export interface AsyncTrainStats {
  /** True when `steps` updates were applied. */
  complete: boolean;
  /** Updates applied. */
  steps: number;
  workers: WorkerReport[];
  /** Measured staleness of every applied gradient (updates between its weights and its own update). */
  staleness: StalenessStats;
  /** Answers refused by the request ledger (repeats, or late answers of a stopped worker). */
  rejected: number;
  /** Gradients still being computed when training ended (never applied). */
  discarded: number;
  /** Non-finite gradients skipped (nonFinite: 'skip'). */
  skipped: number;
  /** Samples behind the applied gradients. */
  samples: number;
  /** From spawning the workers until all were ready and got their first request. */
  startupMs: number;
  /** From the first request to the last update. */
  trainMs: number;
  samplesPerSecond: number;
  /** The batch loss of each applied gradient, in order of application. */
  losses: number[];
  /** Mean ms a worker spent on one gradient (set weights, batch, forward, backward, read back). */
  meanComputeMs: number;
  /** Mean ms the main thread spent per update (optimizer step, reading the weights back). */
  meanApplyMs: number;
}

/** asyncTrain's rejection: `stats` says what was done before it stopped. */
export class AsyncTrainError extends TapfitError {
  constructor(
    code: string,
    message: string,
    readonly stats: AsyncTrainStats,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
    this.name = 'AsyncTrainError';
  }
}

type Phase = 'starting' | 'ready' | 'busy' | 'stopped' | 'failed';

interface Slot {
  index: number;
  worker: Worker;
  phase: Phase;
  timer?: NodeJS.Timeout;
  applied: number;
  failure?: string;
}

/** One asyncTrain run: the main thread's side of the protocol (protocol.ts). */
export class AsyncRun {
  private readonly slots: Slot[] = [];
  /** Each failure reason and the worker that gave it first (the warning says it in full once). */
  private readonly firstToFail = new Map<string, number>();
  private readonly ledger = new GradientLedger();
  private readonly staleness = new StalenessRecorder();
  /** The trainer's update path: the same transformStep, the same checks. */
  private readonly stepper: ChainStepper;
  private version = 0;
  private snapshot?: { version: number; weights: Float32Array[]; buffers: Float32Array[] };
  private counts = { rejected: 0, discarded: 0, skipped: 0 };
  private readonly ms = { compute: 0, apply: 0 };
  private readonly losses: number[] = [];
  private times = { spawned: 0, firstRequest: 0, lastUpdate: 0 };
  private settled = false;
  private settle!: (error?: Error) => void;

  constructor(
    private readonly o: ResolvedAsyncTrainOptions,
    private readonly variables: tf.Variable[],
    /** The model's non-trainable weights: each applied gradient brings its worker's change to them. */
    private readonly buffers: tf.LayerVariable[],
    transforms: readonly StepTransform[],
    /** Projects the updated weights that declare constraints (core's layersConstraints); null when none. */
    private readonly constrain: ((updated: NamedTensors) => void) | null,
    private readonly logger: Logger,
  ) {
    this.stepper = new ChainStepper(transforms, Object.fromEntries(variables.map((v) => [v.name, v])));
  }

  start(initFor: (index: number) => WorkerInit): Promise<AsyncTrainStats> {
    const done = new Promise<AsyncTrainStats>((resolve, reject) => {
      this.settle = (error) => {
        const stats = this.stats();
        if (!error) resolve(stats);
        else reject(error instanceof TapfitError ? new AsyncTrainError(error.code, error.message, stats, { cause: error }) : error);
      };
    });
    this.times.spawned = performance.now();
    try {
      for (let index = 0; index < this.o.workers; index++) this.spawn(index, initFor(index));
    } catch (err) {
      this.finish(err instanceof Error ? err : new Error(String(err))); // terminates the ones started
    }
    return done;
  }

  private spawn(index: number, init: WorkerInit): void {
    const worker = new Worker(path.join(__dirname, 'worker.js'), { workerData: init });
    const slot: Slot = { index, worker, phase: 'starting', applied: 0 };
    this.slots.push(slot);
    worker.on('message', (msg: FromWorker) => this.onMessage(slot, msg));
    worker.on('error', (err) => this.fail(slot, `crashed: ${err.message}`));
    worker.on('exit', (code) => this.fail(slot, `exited with code ${code}`));
    this.arm(slot, 'did not start', this.o.startTimeoutMs);
  }

  private onMessage(slot: Slot, msg: FromWorker): void {
    if (slot.phase === 'stopped' || slot.phase === 'failed') {
      // (a stopped worker's answer was counted as discarded when the run ended)
      if (msg.type === 'gradient' && slot.phase === 'failed') this.counts.rejected++;
      return;
    }
    clearTimeout(slot.timer);
    try {
      if (msg.type === 'failed') return msg.everyWorker ? this.failEveryWorker(slot, msg.error) : this.fail(slot, `failed: ${msg.error}`);
      if (msg.type === 'ready') return this.onReady(slot, msg.shapes, msg.bufferShapes);
      if (!this.ledger.accept(msg.id, slot.index)) {
        this.counts.rejected++;
        return this.arm(slot, 'did not answer'); // its real request is still open
      }
      this.onGradient(slot, msg);
    } catch (err) {
      this.finish(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private onReady(slot: Slot, shapes: number[][], bufferShapes: number[][]): void {
    const differ = (mine: { shape: number[] }[], theirs: number[][]) => theirs.length !== mine.length || mine.some((v, i) => theirs[i]?.join() !== v.shape.join());
    if (differ(this.variables, shapes)) {
      return this.fail(slot, `built a model whose trainable weights [${shapes.map((s) => `[${s}]`).join(', ')}] differ from the master's`);
    }
    if (differ(this.buffers.map((b) => b.read()), bufferShapes)) {
      return this.fail(slot, `built a model whose non-trainable weights [${bufferShapes.map((s) => `[${s}]`).join(', ')}] differ from the master's`);
    }
    slot.phase = 'ready';
    this.startWhenAllReady();
  }

  /** Workers start together (all on version 0), so a slow starter does not just miss the run. */
  private startWhenAllReady(): void {
    if (this.settled || this.slots.length < this.o.workers || this.slots.some((s) => s.phase === 'starting')) return;
    for (const s of this.slots) if (s.phase === 'ready') this.request(s);
  }

  private onGradient(slot: Slot, msg: Extract<FromWorker, { type: 'gradient' }>): void {
    if (!Number.isFinite(msg.loss)) {
      if (this.o.nonFinite === 'throw') {
        throw new TapfitError(
          ErrorCodes.NON_FINITE,
          `asyncTrain: worker ${slot.index} returned a non-finite loss (${msg.loss}) at update ${this.version}; no update was applied. ` +
            "Lower the learning rate, or pass nonFinite: 'skip'.",
        );
      }
      this.counts.skipped++;
      return this.request(slot);
    }
    const bad = msg.grads.findIndex((g) => !g.every(Number.isFinite));
    if (bad >= 0) {
      const what = `worker ${slot.index} returned a non-finite gradient for '${this.variables[bad]?.name}' (request ${msg.id}, update ${this.version})`;
      if (this.o.nonFinite === 'throw') throw new TapfitError(ErrorCodes.NON_FINITE, `asyncTrain: ${what}; no update was applied. Lower the learning rate, or pass nonFinite: 'skip'.`);
      this.counts.skipped++;
      this.logger.warn(`asyncTrain: ${what}; skipped.`);
      return this.request(slot);
    }
    this.checkModel();
    const staleness = this.version - msg.version;
    const started = performance.now();
    this.apply(slot, msg.grads, msg.bufferDeltas);
    this.version++;
    if (this.version < this.o.steps) this.snapshotWeights(); // part of the main thread's cost per update
    this.ms.apply += performance.now() - started;
    this.ms.compute += msg.computeMs;
    this.staleness.record(staleness);
    this.losses.push(msg.loss);
    slot.applied++;
    this.times.lastUpdate = performance.now();
    try {
      this.o.onUpdate?.({ step: this.version, worker: slot.index, staleness, loss: msg.loss });
    } catch (err) {
      // The caller's callback: the run stops, and the rejection still says how far it got.
      const why = err instanceof Error ? err.message : String(err);
      throw new TapfitError(ErrorCodes.PLUGIN_FAILED, `asyncTrain: onUpdate threw at update ${this.version}: ${why}. The run stopped there; the model holds the weights of that update (stats.steps).`, { cause: err });
    }
    if (this.version >= this.o.steps) this.finish();
    else {
      this.checkModel();
      this.request(slot);
    }
  }

  /** A model disposed meanwhile (in onUpdate, or by other code) would fail with a bare TypeError at the next read. */
  private checkModel(): void {
    if (this.variables.some((v) => v.isDisposed)) {
      throw new TapfitError(
        ErrorCodes.STATE,
        `asyncTrain: the model was disposed while asyncTrain was training it (after update ${this.version}); the run stopped there. Dispose the model only after asyncTrain's promise settles.`,
      );
    }
  }

  /** One update: the optimizer step with the gradient, and the worker's change to the buffers added. */
  private apply(slot: Slot, arrays: Float32Array[], bufferDeltas: Float32Array[]): void {
    const malformed = (what: string): never => {
      throw new TapfitError(ErrorCodes.SHAPE, `asyncTrain: worker ${slot.index} sent a malformed gradient: ${what}. Its model must be built from the master's topology.`);
    };
    if (arrays.length !== this.variables.length) malformed(`${arrays.length} tensors for ${this.variables.length} trainable weights`);
    this.variables.forEach((v, i) => {
      if (arrays[i]?.length !== v.size) malformed(`the gradient for '${v.name}' has ${arrays[i]?.length} values, expected ${v.size}`);
    });
    this.buffers.forEach((b, i) => {
      if (bufferDeltas[i]?.length !== b.read().size) malformed(`the change to buffer '${b.name}' has ${bufferDeltas[i]?.length} values, expected ${b.read().size}`);
    });
    const grads: NamedTensors = {};
    this.variables.forEach((v, i) => (grads[v.name] = tf.tensor(arrays[i], v.shape)));
    try {
      this.stepper.apply(grads, this.version);
      this.constrain?.(grads);
    } finally {
      tf.dispose(Object.values(grads));
    }
    tf.tidy(() => this.buffers.forEach((b, i) => b.write(tf.add(b.read(), tf.tensor(bufferDeltas[i], b.read().shape)))));
  }

  /** The current weights and buffers as arrays, read back once per version and shared by the requests. */
  private snapshotWeights(): { weights: Float32Array[]; buffers: Float32Array[] } {
    if (this.snapshot?.version !== this.version) {
      this.snapshot = {
        version: this.version,
        weights: this.variables.map((v) => (v.dataSync() as Float32Array).slice()),
        buffers: this.buffers.map((b) => (b.read().dataSync() as Float32Array).slice()),
      };
    }
    return this.snapshot;
  }

  /** Send `slot` the current weights with a fresh request id. */
  private request(slot: Slot): void {
    const { weights, buffers } = this.snapshotWeights();
    if (!this.times.firstRequest) this.times.firstRequest = performance.now();
    const msg: ToWorker = { type: 'compute', id: this.ledger.issue(slot.index), version: this.version, weights, buffers };
    slot.phase = 'busy';
    slot.worker.postMessage(msg);
    this.arm(slot, 'did not answer');
  }

  private arm(slot: Slot, what: string, ms = this.o.timeoutMs): void {
    slot.timer = setTimeout(() => this.fail(slot, `${what} within ${ms} ms`), ms);
  }

  /** Stop a worker for good; end the run if it was the last one. */
  private fail(slot: Slot, why: string): void {
    if (slot.phase === 'stopped' || slot.phase === 'failed') return;
    clearTimeout(slot.timer);
    const same = this.firstToFail.get(why); // each reason said in full once (a stack can be long)
    if (same === undefined) this.firstToFail.set(why, slot.index);
    slot.phase = 'failed';
    slot.failure = why;
    this.ledger.drop(slot.index);
    void slot.worker.terminate();
    this.logger.warn(`asyncTrain: worker ${slot.index} ${same === undefined ? why : `failed as worker ${same} did`}; ${this.alive().length} worker(s) left.`);
    if (this.alive().length > 0) this.startWhenAllReady();
    else {
      this.finish(new TapfitError(ASYNC_WORKERS_FAILED, `asyncTrain: every worker failed after ${this.version} of ${this.o.steps} updates (${describeFailures(this.slots)}).`));
    }
  }

  /**
   * A failure the other workers would repeat (they rebuild the model from the same topology
   * and setupModule): the run ends now, with the reason said once instead of once per worker.
   */
  private failEveryWorker(slot: Slot, error: string): void {
    clearTimeout(slot.timer);
    slot.phase = 'failed';
    slot.failure = `failed: ${error}`;
    this.ledger.drop(slot.index);
    void slot.worker.terminate();
    this.finish(
      new TapfitError(
        ASYNC_WORKERS_FAILED,
        `asyncTrain stopped after ${this.version} of ${this.o.steps} updates: worker ${slot.index} could not build the model, and every worker builds it the same way: ${error}`,
      ),
    );
  }

  private alive(): Slot[] {
    return this.slots.filter((s) => s.phase === 'starting' || s.phase === 'ready' || s.phase === 'busy');
  }

  /** Terminate every worker, free the optimizer state, then settle (once). */
  private finish(error?: Error): void {
    if (this.settled) return;
    this.settled = true;
    this.counts.discarded = this.ledger.outstanding;
    const live = this.alive();
    for (const s of live) {
      clearTimeout(s.timer);
      s.phase = 'stopped';
    }
    void Promise.allSettled(live.map((s) => s.worker.terminate())).then(() => {
      this.stepper.dispose();
      this.settle(error);
    });
  }

  private stats(): AsyncTrainStats {
    const trainMs = this.times.firstRequest && this.times.lastUpdate ? this.times.lastUpdate - this.times.firstRequest : 0;
    const samples = this.version * this.o.batchSize;
    return {
      complete: this.version >= this.o.steps,
      steps: this.version,
      workers: this.slots.map(({ index, applied, failure }) => ({ index, applied, ...(failure !== undefined && { failure }) })),
      staleness: this.staleness.stats(),
      ...this.counts,
      samples,
      startupMs: this.times.firstRequest ? this.times.firstRequest - this.times.spawned : 0,
      trainMs,
      samplesPerSecond: trainMs > 0 ? (samples / trainMs) * 1000 : 0,
      losses: this.losses,
      meanComputeMs: this.version ? this.ms.compute / this.version : 0,
      meanApplyMs: this.version ? this.ms.apply / this.version : 0,
    };
  }
}
