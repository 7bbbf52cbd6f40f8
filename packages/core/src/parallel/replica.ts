import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import * as path from 'node:path';
import { ErrorCodes, TapfitError } from '../errors';
import { CONTROL_SLOTS, Slot, type FromReplica, type ReplicaInit, type StepOrder } from './protocol';
import { DATA_PARALLEL_PLUGIN } from './replicable';

/** What a replica answered for one step. */
export interface ReplicaResult {
  loss: number;
  pred: Float32Array;
  predShape: number[];
  /** Its gradients (layout of the group's weights) and which it wrote. */
  grads: Float32Array;
  written: Int32Array;
}

/** A batch slice to send: the whole batch's data and where this replica's rows are. */
export interface SliceOrder {
  step: number;
  /** The whole step's noise key. */
  noiseKey: number;
  x: { data: Float32Array | Int32Array; rowShape: number[]; dtype: 'float32' | 'int32' };
  y: { data: Float32Array | Int32Array; rowShape: number[]; dtype: 'float32' | 'int32' };
  from: number;
  rows: number;
}

/**
 * The main thread's handle on one replica worker. Steps are synchronous: `send` writes the
 * slice and signals, `receive` blocks in Atomics.wait until the worker signals back (or
 * exits, or the step times out). Its shared buffers are allocated once and grown only when
 * a batch does not fit.
 */
export class Replica {
  private readonly grads: Float32Array;
  private readonly written: Int32Array;
  private x: Int32Array<ArrayBufferLike> = new Int32Array(0);
  private y: Int32Array<ArrayBufferLike> = new Int32Array(0);
  private sequence = 0;
  /** Set when the worker exits or errors outside a step (noticed between steps). */
  private lost?: string;

  private constructor(
    readonly index: number,
    private readonly worker: Worker,
    private readonly port: MessagePort,
    private readonly control: Int32Array,
    grads: SharedArrayBuffer,
    written: SharedArrayBuffer,
  ) {
    this.grads = new Float32Array(grads);
    this.written = new Int32Array(written);
  }

  /** Spawns the worker and resolves when it has built the model (its weight shapes), or rejects naming the replica. */
  static async start(init: Omit<ReplicaInit, 'control' | 'grads' | 'written' | 'port'>, weightCount: number, flatSize: number, startTimeoutMs: number): Promise<{ replica: Replica; ready: Extract<FromReplica, { type: 'ready' }> }> {
    const { port1, port2 } = new MessageChannel();
    const grads = new SharedArrayBuffer(flatSize * 4);
    const written = new SharedArrayBuffer(weightCount * 4);
    const control = new Int32Array(new SharedArrayBuffer(CONTROL_SLOTS * 4));
    const data: ReplicaInit = { ...init, control: control.buffer as SharedArrayBuffer, grads, written, port: port2 };
    const worker = new Worker(path.join(__dirname, 'replica-worker.js'), { workerData: data, transferList: [port2] });
    const replica = new Replica(init.replica, worker, port1, control, grads, written);
    worker.on('error', (e) => (replica.lost ??= `crashed: ${e.message}`));
    worker.on('exit', (code) => (replica.lost ??= `exited (code ${code})`));
    const ready = await new Promise<Extract<FromReplica, { type: 'ready' }>>((resolve, reject) => {
      const fail = (why: string) => {
        clearTimeout(timer);
        reject(new TapfitError(ErrorCodes.CONFIG, `${DATA_PARALLEL_PLUGIN}: replica ${init.replica}'s worker ${why}`));
      };
      const timer = setTimeout(() => fail(`was not ready within ${startTimeoutMs} ms (startTimeoutMs): loading TF.js, setupModule's setup and building the model did not finish; raise startTimeoutMs if it is only slow.`), startTimeoutMs);
      worker.on('message', (m: FromReplica) => {
        if (m.type === 'ready') {
          clearTimeout(timer);
          resolve(m);
        } else if (m.type === 'failed') fail(`failed at start: ${m.error}`);
      });
      worker.once('error', (e) => fail(`crashed at start: ${e.message}`));
      worker.once('exit', (code) => fail(`exited at start (code ${code})${code === 0 ? ": its setup ended without the model being built (does setupModule's setup return a promise that never settles?)" : ''}.`));
    }).catch(async (err) => {
      await worker.terminate();
      throw err;
    });
    // Blocked in Atomics.wait between steps, the worker must not keep node running: a script that forgets dispose() still exits.
    worker.unref();
    return { replica, ready };
  }

  /** Writes this replica's rows of the batch into its shared buffers and signals the step. */
  send(order: SliceOrder): void {
    if (this.lost) throw this.failure(order.step, this.lost);
    const grown: Partial<StepOrder> = {};
    const copy = (part: SliceOrder["x"], held: Int32Array<ArrayBufferLike>, key: 'x' | 'y'): void => {
      const rowSize = part.rowShape.reduce((a, b) => a * b, 1);
      const size = rowSize * order.rows;
      let target = held;
      if (held.length < size) {
        target = new Int32Array(new SharedArrayBuffer(size * 4));
        grown[key] = target.buffer as SharedArrayBuffer;
        this[key] = target;
      }
      // Same bytes whatever the dtype: copy through a view of the batch's own kind.
      const view = part.dtype === 'int32' ? target : new Float32Array(target.buffer, 0, target.length);
      view.set(part.data.subarray(order.from * rowSize, order.from * rowSize + size));
    };
    copy(order.x, this.x, 'x');
    copy(order.y, this.y, 'y');
    const message: StepOrder = { type: 'step', step: order.step, from: order.from, rows: order.rows, noiseKey: order.noiseKey, xShape: order.x.rowShape, xDtype: order.x.dtype, yShape: order.y.rowShape, yDtype: order.y.dtype, ...grown };
    this.port.postMessage(message);
    this.sequence++;
    Atomics.store(this.control, Slot.REQUEST, this.sequence);
    Atomics.notify(this.control, Slot.REQUEST);
  }

  /** Blocks until the worker answers the step sent last; throws naming the replica when it failed, died or timed out. */
  receive(step: number, timeoutMs: number): ReplicaResult {
    const deadline = Date.now() + timeoutMs;
    while (Atomics.load(this.control, Slot.DONE) < this.sequence && Atomics.load(this.control, Slot.EXITED) === 0) {
      const left = deadline - Date.now();
      if (left <= 0) throw this.failure(step, `did not answer within ${timeoutMs} ms (stepTimeoutMs)`);
      Atomics.wait(this.control, Slot.DONE, Atomics.load(this.control, Slot.DONE), Math.min(left, 1000));
    }
    let answer: FromReplica | undefined;
    for (let m = receiveMessageOnPort(this.port); m; m = receiveMessageOnPort(this.port)) answer = m.message as FromReplica;
    if (answer?.type === 'failed') throw this.failure(step, `threw: ${answer.error}`);
    if (answer?.type !== 'result') throw this.failure(step, Atomics.load(this.control, Slot.EXITED) ? 'exited (its thread ended)' : 'answered without a result');
    return { loss: answer.loss, pred: answer.pred, predShape: answer.predShape, grads: this.grads, written: this.written };
  }

  private failure(step: number, what: string): TapfitError {
    this.lost ??= what;
    return new TapfitError(
      ErrorCodes.PLUGIN_FAILED,
      `${DATA_PARALLEL_PLUGIN}: replica ${this.index} (a worker thread) ${what} at step ${step}. No update was applied and the replicas were stopped; build a new trainer to go on (or train without dataParallel).`,
    );
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}
