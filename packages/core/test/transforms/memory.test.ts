// The per-step path must neither leak tensors nor read values back from the device.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import {
  adadelta,
  adagrad,
  adam,
  adamax,
  adamw,
  rmsprop,
  chain,
  clipByGlobalNorm,
  cosineDecay,
  disposeState,
  sgd,
  transformStep,
  type Chain,
} from '../../src/transforms';
import { makeParams, tfGradient, useCpuBackend } from './harness';
import { problem } from './reference';

const optimizers: Record<string, () => Chain> = {
  sgd: () => sgd({ lr: 0.05 }),
  'sgd + momentum + weight decay': () => sgd({ lr: 0.05, momentum: 0.9, weightDecay: 1e-3 }),
  'clip + sgd + nesterov': () => chain(clipByGlobalNorm(1), sgd({ lr: 0.05, momentum: 0.9, nesterov: true })),
  adam: () => adam({ lr: cosineDecay({ initial: 0.01, decaySteps: 100 }) }),
  adamw: () => adamw({ lr: 0.01, weightDecay: 0.1 }),
  'rmsprop + momentum': () => rmsprop({ lr: 0.01, momentum: 0.9 }),
  adagrad: () => adagrad({ lr: 0.01 }),
  adadelta: () => adadelta({ lr: 1 }),
  adamax: () => adamax({ lr: 0.01 }),
};

describe('transforms: memory and device traffic', () => {
  useCpuBackend();

  for (const [label, make] of Object.entries(optimizers)) {
    it(`${label}: tensor count is flat over 200 steps and back to the start after disposal`, () => {
      const start = tf.memory().numTensors;
      const opt = make();
      const params = makeParams(problem.w0);
      let state = opt.init(params);
      const counts: number[] = [];
      for (let step = 0; step < 200; step++) {
        const grads = tfGradient(params);
        state = transformStep(opt, params, grads, state, { step });
        tf.dispose(grads);
        counts.push(tf.memory().numTensors);
      }
      expect(new Set(counts).size, `tensor counts seen: ${[...new Set(counts)].join(', ')}`).to.equal(1);
      disposeState(state, []);
      tf.dispose(Object.values(params));
      expect(tf.memory().numTensors).to.equal(start);
    });
  }

  it('a step reads nothing back from the backend (no dataSync, no await)', () => {
    const opt = chain(clipByGlobalNorm(0.5), adamw({ lr: 0.01 }), clipByGlobalNorm(0.1, { name: 'clipAgain' }));
    const params = makeParams(problem.w0);
    let state = opt.init(params);
    const backend = tf.backend() as unknown as Record<'readSync' | 'read', (...args: unknown[]) => unknown>;
    const original = { readSync: backend.readSync, read: backend.read };
    let reads = 0;
    backend.readSync = (...args) => (reads++, original.readSync.apply(backend, args));
    backend.read = (...args) => (reads++, original.read.apply(backend, args));
    try {
      for (let step = 0; step < 3; step++) {
        const grads = tfGradient(params);
        state = transformStep(opt, params, grads, state, { step });
        tf.dispose(grads);
      }
      expect(reads, 'reads during the steps').to.equal(0);
      params.w1.dataSync(); // the spy itself works
      expect(reads).to.equal(1);
    } finally {
      Object.assign(backend, original);
      disposeState(state, []);
      tf.dispose(Object.values(params));
    }
  });

  it('a failing step leaves the parameters and the old state untouched and leaks nothing', () => {
    const opt = sgd({ lr: (step) => (step < 2 ? 0.05 : -1), momentum: 0.9 });
    const params = makeParams(problem.w0);
    let state = opt.init(params);
    for (let step = 0; step < 2; step++) {
      const grads = tfGradient(params);
      state = transformStep(opt, params, grads, state, { step });
      tf.dispose(grads);
    }
    const before = { numTensors: tf.memory().numTensors, w1: Array.from(params.w1.dataSync()) };
    const grads = tfGradient(params);
    expect(() => transformStep(opt, params, grads, state, { step: 2 })).to.throw(/the schedule gave -1 at step 2/);
    tf.dispose(grads);
    expect(tf.memory().numTensors).to.equal(before.numTensors);
    expect(Array.from(params.w1.dataSync())).to.deep.equal(before.w1);
    expect(stateTensorsAlive(state)).to.equal(true);
    disposeState(state, []);
    tf.dispose(Object.values(params));
  });
});

function stateTensorsAlive(state: object): boolean {
  return Object.values(state).every((v) => (v instanceof tf.Tensor ? !v.isDisposed : typeof v !== 'object' || stateTensorsAlive(v)));
}
