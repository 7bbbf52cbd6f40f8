// One data-parallel replica: its own thread with its own TF.js and its own copy of the
// model. Per step it takes the main thread's current weights and its slice of the batch
// from shared memory, computes the loss and the gradients of that slice as core's
// autodiff does, writes the gradients back and answers with its loss and predictions.
import * as tf from '@tensorflow/tfjs';
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { selectBackend } from '../backend/select';
import { TapfitError } from '../errors';
import { rebuildLayersModelInWorker } from '../model/rebuild-in-worker';
import { fromLayersModel } from '../model/trainable-model';
import type { Segment } from '../model/segment';
import type { LossFn } from '../services/tokens';
import { runForward } from '../step/forward-pass';
import { resolveLoss, type LossName } from '../train/losses';
import { copyValues } from './host-copy';
import { CONTROL_SLOTS, Slot, type FromReplica, type ReplicaInit, type StepOrder } from './protocol';
import { importSetupModule } from '../model/worker-setup-module';
import { WeightLayout } from './weight-layout';
import { drawWholeBatchMasks, type PartRows } from './replica-dropout';
import { noiseKey } from '../model/noise-seed';

const init = workerData as ReplicaInit;
const control = new Int32Array(init.control, 0, CONTROL_SLOTS);

// Whatever ends this thread (process.exit in user code, an uncaught error) wakes the main thread, which is blocked waiting.
process.on('exit', () => {
  Atomics.store(control, Slot.EXITED, 1);
  Atomics.add(control, Slot.DONE, 1);
  Atomics.notify(control, Slot.DONE);
});

/** A TapfitError says what and the fix, so its message alone; anything else with its stack (a bug in the setup module, say). */
const describeError = (err: unknown): string => (err instanceof TapfitError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err));

async function start(): Promise<void> {
  tf.env().set('PROD', true);
  await selectBackend(init.backend, { threads: 1, log: false });
  let loss: LossFn | undefined = init.loss ? resolveLoss(init.loss as LossName) : undefined;
  if (init.setupModule) {
    const mod = await importSetupModule<{ setup: (ctx: { replica: number }) => unknown; loss: LossFn }>(init.setupModule);
    await mod.setup?.({ replica: init.replica });
    if (typeof mod.loss === 'function') loss = mod.loss;
  }
  const model = await rebuildLayersModelInWorker(init.topology, { builder: 'each dataParallel replica worker', setupOption: 'setupModule' });
  const variables = model.weights.map((w) => w.read() as tf.Variable);
  parentPort!.postMessage({ type: 'ready', shapes: variables.map((v) => [...v.shape]), hasLoss: loss !== undefined } satisfies FromReplica);
  if (!loss) return;
  const replica = new Replica(fromLayersModel(model).segments, variables, loss);
  drawWholeBatchMasks(model, () => replica.part);
  serve(replica);
}

class Replica {
  private readonly layout: WeightLayout;
  private readonly weights: Float32Array;
  private readonly grads: Float32Array;
  private readonly wanted: Int32Array;
  private readonly written: Int32Array;
  private x?: SharedArrayBuffer;
  private y?: SharedArrayBuffer;
  /** The rows and noise key of the step running (read by the model's Dropout layers). */
  part: PartRows = { from: 0, noiseKey: 0 };

  constructor(
    private readonly segments: readonly Segment[],
    private readonly variables: readonly tf.Variable[],
    private readonly loss: LossFn,
  ) {
    this.layout = new WeightLayout(variables);
    this.weights = new Float32Array(init.weights);
    this.grads = new Float32Array(init.grads);
    this.wanted = new Int32Array(init.wanted);
    this.written = new Int32Array(init.written);
  }

  /** Takes the shared buffers an order brings (the main thread grew them for a larger batch). */
  take(order: StepOrder): void {
    if (order.x) this.x = order.x;
    if (order.y) this.y = order.y;
  }

  /** One step: the order's slice at the main thread's weights; answers on the port. */
  step(order: StepOrder): void {
    // The cpu backend keeps the array a tensor is made from: give it a copy, not the shared memory the next step overwrites.
    const own = <T extends Float32Array | Int32Array>(a: T): T => (init.backend === 'cpu' ? (a.slice() as T) : a);
    const wanted: tf.Variable[] = [];
    tf.tidy(() => {
      this.variables.forEach((v, i) => {
        // A new tensor per weight, never a write into the variable's memory: wasm's convolution and
        // matMul keep the weights they packed under the tensor's id, and would go on using the old ones.
        v.assign(tf.tensor(own(this.layout.view(this.weights, i)), v.shape, v.dtype));
        // The main thread says which weights train this step (its trainable set may have changed since setup).
        const want = this.wanted[i] === 1;
        v.trainable = want;
        if (want) wanted.push(v);
      });
    });
    const slice = (buffer: SharedArrayBuffer | undefined, shape: number[], dtype: 'float32' | 'int32') => {
      const size = shape.reduce((a, b) => a * b, 1);
      const data = dtype === 'int32' ? new Int32Array(buffer!, 0, size) : new Float32Array(buffer!, 0, size);
      return tf.tensor(own(data), shape, dtype);
    };
    this.part = { from: order.from, noiseKey: order.noiseKey };
    // Layers that draw with noiseSeed from the context get a key of this part's own (independent of the other parts'); tfjs's noise layers (Dropout, GaussianNoise, ...) draw the whole batch's rows (replica-dropout.ts).
    const ctx = { training: true, recomputing: false, step: order.step, noiseKey: noiseKey(order.noiseKey, init.replica) };
    let pred: tf.Tensor | undefined;
    try {
      const loss = tf.tidy(() => {
        const x = slice(this.x, [order.rows, ...order.xShape], order.xDtype);
        const y = slice(this.y, [order.rows, ...order.yShape], order.yDtype);
        const { value, grads } = tf.variableGrads(() => {
          const p = runForward({ segments: this.segments, ctx }, x);
          pred = tf.keep(tf.cast(p, 'float32'));
          return this.loss(y, p);
        }, wanted);
        this.written.fill(0);
        this.variables.forEach((v, i) => {
          const g = grads[v.name];
          if (!g) return;
          copyValues(g, this.layout.view(this.grads, i));
          this.written[i] = 1;
        });
        return value.dataSync()[0];
      });
      const values = Float32Array.from(pred!.dataSync() as Float32Array); // its own buffer, to transfer
      init.port.postMessage({ type: 'result', loss, pred: values, predShape: [...pred!.shape] } satisfies FromReplica, [values.buffer]);
    } finally {
      pred?.dispose();
    }
  }
}

/** Waits for each step's signal, runs it and signals back; a step that throws is answered with the error. */
function serve(replica: Replica): void {
  // Steps answered so far: the main thread may signal the first before this loop starts (it has the 'ready').
  let seen = 0;
  for (;;) {
    Atomics.wait(control, Slot.REQUEST, seen);
    const request = Atomics.load(control, Slot.REQUEST);
    if (request === seen) continue;
    seen = request;
    try {
      let order: StepOrder | undefined;
      for (let m = receiveMessageOnPort(init.port); m; m = receiveMessageOnPort(init.port)) {
        order = m.message as StepOrder;
        replica.take(order);
      }
      if (!order) throw new Error(`replica ${init.replica} was signalled step ${request} without its order`);
      replica.step(order);
    } catch (err) {
      init.port.postMessage({ type: 'failed', error: describeError(err) } satisfies FromReplica);
    }
    Atomics.store(control, Slot.DONE, request);
    Atomics.notify(control, Slot.DONE);
  }
}

start().catch((err) => parentPort!.postMessage({ type: 'failed', error: describeError(err) } satisfies FromReplica));
