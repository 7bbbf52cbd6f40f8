// A gradient worker of asyncTrain: its own thread, its own TF.js instance. It builds the
// model from the JSON topology, then answers each 'compute' (weights, buffers) with the
// gradient of the loss on its next batch, computed on exactly those weights, and with how
// its training-mode forward pass changed the buffers (BatchNorm moving statistics).
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'node:worker_threads';
import { forwardSegments, fromLayersModel, importSetupModule, noiseKey, rebuildLayersModelInWorker, resolveLoss, selectBackend, TapfitError, weightPenalties, type LossFn, type LossName } from '@tapfit/core';
import type { FromWorker, ToWorker, WorkerInit } from './protocol';
import { shardBatches } from './worker-batches';

const port = parentPort!;
const send = (msg: FromWorker, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

async function start(init: WorkerInit): Promise<void> {
  tf.env().set('PROD', true);
  await selectBackend(init.backend, { log: false });
  let loss: LossFn = resolveLoss(init.loss as LossName);
  if (init.setupModule) {
    const mod = await importSetupModule<{ setup: (ctx: { workerIndex: number }) => unknown; loss: LossFn }>(init.setupModule);
    await mod.setup?.({ workerIndex: init.index });
    if (typeof mod.loss === 'function') loss = mod.loss;
  }
  let model: tf.LayersModel;
  try {
    model = await rebuildLayersModelInWorker(init.topology, { builder: 'each asyncTrain worker', setupOption: 'setupModule' });
  } catch (err) {
    // A class the setup module did not register is missing in every worker alike: said once, by the first to find it.
    return fail(err, err instanceof TapfitError);
  }
  const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
  const buffers = model.nonTrainableWeights;
  const batches = shardBatches(init);
  // The trainer's forward (core's layers adapter), so that dropout draws by core's noise rule
  // instead of tfjs's unseeded masks: noiseKey(seed, batch serial), where this worker's n-th
  // batch is the run's serial n * workers + index (no two batches of a run share a key).
  const forward = fromLayersModel(model);
  let served = 0;

  port.on('message', (msg: ToWorker) => {
    try {
      const started = performance.now();
      tf.tidy(() => {
        msg.weights.forEach((w, i) => vars[i].assign(tf.tensor(w, vars[i].shape)));
        msg.buffers.forEach((b, i) => buffers[i].write(tf.tensor(b, buffers[i].read().shape)));
      });
      const { x, y } = batches.next().value;
      const serial = served++ * init.workers + init.index;
      const ctx = { training: true, recomputing: false, step: serial, noiseKey: noiseKey(init.seed, serial) };
      // The model's weight penalties (regularizers) join the loss, as model.fit and the trainer add them.
      const objective = () => {
        const batchLoss = loss(y, forwardSegments(forward, x, ctx));
        const penalties = weightPenalties(model);
        return (penalties.length ? tf.add(batchLoss, tf.addN(penalties)) : batchLoss) as tf.Scalar;
      };
      const { value, grads } = tf.tidy(() => tf.variableGrads(objective, vars));
      const arrays = vars.map((v) => Float32Array.from(grads[v.name].dataSync()));
      const bufferDeltas = buffers.map((b, i) => {
        const after = b.read().dataSync();
        return msg.buffers[i].map((before, j) => after[j] - before);
      });
      const lossValue = value.dataSync()[0];
      tf.dispose([x, y, value, ...Object.values(grads)]);
      send(
        { type: 'gradient', id: msg.id, version: msg.version, grads: arrays, bufferDeltas, loss: lossValue, computeMs: performance.now() - started },
        [...arrays, ...bufferDeltas].map((a) => a.buffer as ArrayBuffer),
      );
    } catch (err) {
      fail(err);
    }
  });
  send({ type: 'ready', shapes: vars.map((v) => [...v.shape]), bufferShapes: buffers.map((b) => [...b.read().shape]) });
}

/** A TapfitError says what and the fix, so its message alone; anything else with its stack (a bug in the setup module, say). */
function fail(err: unknown, everyWorker = false): void {
  send({ type: 'failed', error: err instanceof TapfitError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err), everyWorker });
}

start(workerData as WorkerInit).catch(fail);
