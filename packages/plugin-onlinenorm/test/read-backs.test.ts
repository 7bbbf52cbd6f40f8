import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { expect } from 'chai';
import { createOnlineNormState, disposeOnlineNormState, onlineNormalize, type NormalizeArgs, type OnlineNormState } from '../src';
import { randomInput } from './helpers';

/** Runs `fn` and returns what it returned and the dataIds the backend read back meanwhile (dataSync, data). */
function recordReads<T>(fn: () => T): { result: T; reads: object[] } {
  const backend = tf.engine().backend as unknown as Record<'readSync' | 'read', (dataId: object) => unknown>;
  const reads: object[] = [];
  const originals = { readSync: backend.readSync, read: backend.read };
  for (const m of ['readSync', 'read'] as const) {
    backend[m] = function (this: unknown, dataId: object) {
      reads.push(dataId);
      return originals[m].call(this, dataId);
    };
  }
  try {
    return { result: fn(), reads };
  } finally {
    backend.readSync = originals.readSync;
    backend.read = originals.read;
  }
}

const variables = (s: OnlineNormState) => [s.mean, s.variance, s.u, s.v];

/** One training call (forward + backward) with the NaN check on every call. */
function trainCall(x: tf.Tensor, g: tf.Tensor, state: OnlineNormState, recurrences: 'host' | 'device'): void {
  const args: NormalizeArgs = { mode: 'train', alphaFwd: 0.9, alphaBkw: 0.8, epsilon: 1e-5, checkFiniteEvery: 1, recurrences };
  tf.tidy(() => {
    tf.grads((input: tf.Tensor) => onlineNormalize(input, state, args))([x], g);
  });
}

for (const backend of ['cpu', 'wasm']) {
  describe(`onlineNormalize's read-backs (${backend})`, () => {
    before(async () => {
      expect(await tf.setBackend(backend), `${backend} backend`).to.equal(true);
    });
    after(async () => {
      await tf.setBackend('cpu');
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
  });
}
