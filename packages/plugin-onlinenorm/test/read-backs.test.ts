import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, selectBackend, type TapfitError } from '@tapfit/core';
import { batchNormModel, blobData, testTrainer } from '@tapfit/core/testing';
import { createOnlineNormState, disposeOnlineNormState, onlineNorm, onlineNormalize, onlineNormLayer, onlineNormLayers, readFiniteChecks, type NormalizeArgs, type OnlineNormState } from '../src';
import { randomInput } from './helpers';

/** Counts the dataIds the backend reads back (dataSync, data) until `restore()`. */
function watchReads(): { reads: object[]; restore: () => void } {
  const backend = tf.engine().backend as unknown as Record<'readSync' | 'read', (dataId: object) => unknown>;
  const reads: object[] = [];
  const originals = { readSync: backend.readSync, read: backend.read };
  for (const m of ['readSync', 'read'] as const) {
    backend[m] = function (this: unknown, dataId: object) {
      reads.push(dataId);
      return originals[m].call(this, dataId);
    };
  }
  return { reads, restore: () => Object.assign(backend, originals) };
}

/** Runs `fn` and returns what it returned and the dataIds the backend read back meanwhile. */
function recordReads<T>(fn: () => T): { result: T; reads: object[] } {
  const watch = watchReads();
  try {
    return { result: fn(), reads: watch.reads };
  } finally {
    watch.restore();
  }
}

const variables = (s: OnlineNormState) => [s.mean, s.variance, s.u, s.v];

/** One training call (forward + backward) with the NaN check on every call (by default). */
function trainCall(x: tf.Tensor, g: tf.Tensor, state: OnlineNormState, recurrences: 'host' | 'device', checkFiniteEvery = 1): void {
  const args: NormalizeArgs = { mode: 'train', alphaFwd: 0.9, alphaBkw: 0.8, epsilon: 1e-5, checkFiniteEvery, recurrences };
  tf.tidy(() => {
    tf.grads((input: tf.Tensor) => onlineNormalize(input, state, args))([x], g);
  });
}

for (const backend of ['cpu', 'wasm'] as const) {
  describe(`onlineNormalize's read-backs (${backend})`, () => {
    // As tapfit trains: on wasm with core's kernels (the stock wasm Slice, which the device
    // scans use, copies its whole input out of the heap).
    before(async () => {
      await selectBackend(backend, { log: false });
    });
    after(async () => {
      await selectBackend('cpu', { log: false });
    });

    it("'host' recurrences check the new M, V, u, v on the host: the check reads nothing back", () => {
      const state = createOnlineNormState(4);
      for (const inner of [[4], [3, 3, 4]]) {
        const x = randomInput([6, ...inner], 1, 1, 2);
        const g = randomInput([6, ...inner], 2);
        const { reads } = recordReads(() => trainCall(x, g, state, 'host'));
        // What the host loops read: M, V and the per-sample mean (and spatial variance) in
        // the forward; u, v and five [N, C] summaries in the backward. Never the values they
        // committed (the variables hold those tensors now).
        const committed = variables(state).map((t) => t.dataId);
        expect(reads.filter((id) => committed.includes(id)), `${inner}: committed values read back`).to.have.length(0);
        expect(reads, `${inner}: read-backs of one training call`).to.have.length(inner.length === 1 ? 3 + 7 : 4 + 7);
        tf.dispose([x, g]);
      }
      disposeOnlineNormState(state);
    });

    it("'host' recurrences still stop at non-finite statistics, float32 overflow included, and leave them unchanged", () => {
      const state = createOnlineNormState(2, 'host_check');
      const x = randomInput([3, 2], 1);
      trainCall(x, randomInput([3, 2], 2), state, 'host');
      const before = variables(state).map((t) => Array.from(t.dataSync()));
      // Finite in float64 (V gets (3e30)^2 = 9e60), Inf once stored as float32.
      const huge = tf.tensor2d([3e30, 1, 2, 3], [2, 2]);
      expect(() => trainCall(huge, tf.onesLike(huge), state, 'host')).to.throw(/OnlineNorm 'host_check'.*non-finite running mean\/variance.*training call 2/);
      expect(variables(state).map((t) => Array.from(t.dataSync())), 'after the failed forward').to.deep.equal(before);
      const badGrad = tf.tensor2d([1, NaN, 2, 3, 1, 1], [3, 2]);
      expect(() => trainCall(x, badGrad, state, 'host')).to.throw(/OnlineNorm 'host_check'.*non-finite control accumulators.*backward pass 2/);
      // Its forward advanced M, V (a forward is committed once it returns); the failed backward left u, v as they were.
      expect(variables(state).slice(2).map((t) => Array.from(t.dataSync()))).to.deep.equal(before.slice(2));
      tf.dispose([x, huge, badGrad]);
      disposeOnlineNormState(state);
    });

    it("'device' recurrences read nothing back in a training call; the next training call reads its state's checks in one read-back", () => {
      const state = createOnlineNormState(4);
      const x = randomInput([6, 3, 3, 4], 1, 1, 2);
      const g = randomInput([6, 3, 3, 4], 2);
      expect(recordReads(() => trainCall(x, g, state, 'device')).reads, 'first call').to.have.length(0);
      expect(state.unreadChecks, 'M, V and u, v checked, unread').to.equal(2);
      for (let call = 2; call <= 4; call++) {
        expect(recordReads(() => trainCall(x, g, state, 'device')).reads, `call ${call}`).to.have.length(1);
      }
      expect(recordReads(() => readFiniteChecks([state])).reads, 'readFiniteChecks').to.have.length(1);
      expect(recordReads(() => readFiniteChecks([state])).reads, 'nothing left to read').to.have.length(0);
      // checkFiniteEvery 0: no check, nothing kept, nothing read.
      trainCall(x, g, state, 'device', 0);
      expect(state.unreadChecks).to.equal(0);
      tf.dispose([x, g]);
      disposeOnlineNormState(state);
    });

    it("'device' recurrences report non-finite statistics naming the unit and the call when the check is read, and put the statistics back", () => {
      const state = createOnlineNormState(2, 'dev_check');
      const x = randomInput([3, 2], 1);
      trainCall(x, randomInput([3, 2], 2), state, 'device');
      readFiniteChecks([state]);
      const read = () => variables(state).map((t) => Array.from(t.dataSync()));
      const before = read();
      const bad = tf.tensor2d([1, NaN, 2, 3], [2, 2]);
      trainCall(bad, tf.onesLike(bad), state, 'device'); // checked on the device, not read yet
      expect(read().flat().every(Number.isFinite), 'assigned, until the check is read').to.equal(false);
      // Read by the next training call, before it computes anything; the earliest failure is named
      // and the statistics are put back as they were before the failed call.
      expect(() => trainCall(x, tf.onesLike(x), state, 'device')).to.throw(/OnlineNorm 'dev_check'.*non-finite running mean\/variance \(forward\) at training call 2\b/);
      expect(read(), 'M, V, u, v as before the failed call').to.deep.equal(before);
      const badGrad = tf.tensor2d([1, NaN, 2, 3, 1, 1], [3, 2]);
      trainCall(x, badGrad, state, 'device');
      expect(() => readFiniteChecks([state])).to.throw(/OnlineNorm 'dev_check'.*non-finite control accumulators u\/v \(backward\) at backward pass 3\b/);
      const advanced = read();
      expect(advanced.slice(0, 2), 'its forward (finite) stays committed').to.not.deep.equal(before.slice(0, 2));
      expect(advanced.slice(2), 'its backward was put back').to.deep.equal(before.slice(2));
      expect(state.unreadChecks, 'a read consumes the checks').to.equal(0);
      // An inference call reads them too: the statistics are not used non-finite.
      const afterBackward = read();
      trainCall(bad, tf.onesLike(bad), state, 'device');
      const inference = () => tf.tidy(() => void onlineNormalize(x, state, { mode: 'inference', alphaFwd: 0.9, alphaBkw: 0.8, epsilon: 1e-5 }));
      expect(inference).to.throw(/OnlineNorm 'dev_check'.*non-finite running mean\/variance \(forward\) at training call 4\b/);
      expect(read()).to.deep.equal(afterBackward);
      expect(recordReads(inference).reads, 'nothing unread: nothing read').to.have.length(0);
      tf.dispose([x, bad, badGrad]);
      disposeOnlineNormState(state);
    });

    it("the plugin with 'device' recurrences reads all layers' checks in one read-back per step, and a failure stops that step naming the layer and the trainer step", async () => {
      const readsOfFit = async (checkFiniteEvery: number) => {
        const trainer = testTrainer({ model: batchNormModel(), nonFinite: 'off', plugins: [onlineNorm({ recurrences: 'device', checkFiniteEvery })] });
        const data = blobData(48);
        await trainer.fit(data, { epochs: 1, batchSize: 8 }); // warm-up
        const { reads } = await recordReadsAsync(() => trainer.fit(data, { epochs: 1, batchSize: 8 }));
        data.dispose();
        trainer.dispose();
        return reads.length;
      };
      const steps = 48 / 8;
      // Two OnlineNorm layers (bn1, bn2), each checked in the forward (M, V) and the backward (u, v).
      expect((await readsOfFit(1)) - (await readsOfFit(0)), 'read-backs of the check in a 6-step epoch').to.equal(steps);

      // NaN in sample 20 (batch 3, step 2). nonFinite 'off': core does not read the loss, so only
      // the OnlineNorm check stops the step (with core's default 'throw', the NaN loss stops it first).
      const x = new Float32Array(32 * 4).map((_, i) => ((i * 7) % 11) / 11);
      x.fill(NaN, 4 * 20, 4 * 21);
      const data = arrayData({ x, y: Int32Array.from({ length: 32 }, (_, i) => i % 3), xShape: [4] });
      const trainer = testTrainer({ model: batchNormModel(), nonFinite: 'off', plugins: [onlineNorm({ recurrences: 'device' })] });
      let err: TapfitError | undefined;
      await trainer.fit(data, { epochs: 1, batchSize: 8, shuffle: false }).catch((e) => (err = e));
      // Read in the plugin's backward tap: core wraps a tap's error, the original is the cause.
      expect(err?.code).to.equal('TAPFIT_E_PLUGIN_FAILED');
      expect((err?.cause as TapfitError | undefined)?.code).to.equal('TAPFIT_E_NON_FINITE');
      expect(err?.message).to.match(/plugin 'online-norm' failed in hook 'backward': OnlineNorm 'bn1': non-finite running mean\/variance \(forward\) at training call 3 \(trainer step 2\)/);
      expect(trainer.step).to.equal(2);
      const weights = trainer.model.segments.flatMap((seg) => seg.params).map((v) => Array.from(v.dataSync()));
      expect(weights.flat().every(Number.isFinite), 'the failed step applied no update').to.equal(true);
      // bn1's NaN outputs made bn2's statistics non-finite too: both were put back.
      const layers = onlineNormLayers(trainer.model.layersModel!);
      expect(layers).to.have.length(2);
      for (const l of layers) expect(variables(l.state).every((t) => Array.from(t.dataSync()).every(Number.isFinite)), `${l.name} statistics`).to.equal(true);
      data.dispose();
      trainer.dispose();
    });

    it("with core's default nonFinite 'throw', a NaN loss stops the step first; the layers' next call reads the checks, puts every layer's statistics back and reports the first", async () => {
      const x = new Float32Array(32 * 4).map((_, i) => ((i * 7) % 11) / 11);
      x.fill(NaN, 4 * 20, 4 * 21);
      const data = arrayData({ x, y: Int32Array.from({ length: 32 }, (_, i) => i % 3), xShape: [4] });
      // ecm 'none': wasm's clamp (fmin/fmax) would turn NaN into a bound, and the loss would stay finite.
      const trainer = testTrainer({ model: batchNormModel(), plugins: [onlineNorm({ recurrences: 'device', ecm: 'none' })] });
      let err: TapfitError | undefined;
      await trainer.fit(data, { epochs: 1, batchSize: 8, shuffle: false }).catch((e) => (err = e));
      expect(err?.message).to.match(/non-finite loss \(NaN\) at step 2/);
      const input = tf.ones([2, 4]);
      expect(() => trainer.predict(input)).to.throw(/OnlineNorm 'bn1'.*running mean\/variance \(forward\) at training call 3 \(trainer step 2\)/);
      for (const l of onlineNormLayers(trainer.model.layersModel!)) expect(variables(l.state).every((t) => Array.from(t.dataSync()).every(Number.isFinite)), `${l.name} statistics`).to.equal(true);
      const out = trainer.predict(input) as tf.Tensor;
      expect(Array.from(out.dataSync()).every(Number.isFinite)).to.equal(true);
      tf.dispose([input, out]);
      data.dispose();
      trainer.dispose();
    });

    it("OnlineNorm layers in model.fit, 'device' recurrences: one read-back per step for all layers, at the first layer's next call", async () => {
      const readsOfFit = async (checkFiniteEvery: number) => {
        const layer = (name: string) => onlineNormLayer({ name, recurrences: 'device', checkFiniteEvery });
        const model = tf.sequential({
          layers: [tf.layers.dense({ inputShape: [4], units: 8 }), layer('on1'), tf.layers.dense({ units: 6 }), layer('on2'), tf.layers.dense({ units: 3 })],
        });
        model.compile({ optimizer: tf.train.sgd(0.01), loss: 'meanSquaredError' });
        const xs = tf.randomNormal([48, 4], 0, 1, 'float32', 1);
        const ys = tf.randomNormal([48, 3], 0, 1, 'float32', 2);
        await model.fit(xs, ys, { batchSize: 8, epochs: 1, verbose: 0, shuffle: false }); // warm-up
        const { reads } = await recordReadsAsync(() => model.fit(xs, ys, { batchSize: 8, epochs: 1, verbose: 0, shuffle: false }));
        tf.dispose([xs, ys]);
        model.dispose(); // the layers drop their last step's unread checks
        return reads.length;
      };
      expect((await readsOfFit(1)) - (await readsOfFit(0)), 'read-backs of the check in a 6-step epoch').to.equal(6);
    });
  });
}

/** recordReads for an async function. */
async function recordReadsAsync<T>(fn: () => Promise<T>): Promise<{ result: T; reads: object[] }> {
  const watch = watchReads();
  try {
    return { result: await fn(), reads: watch.reads };
  } finally {
    watch.restore();
  }
}
