// An option given as undefined means its default, as if it were left out: what the option
// types promise (`x?: T | undefined`) and what a caller forwarding optional settings relies on.

import { expect } from 'chai';
import * as T from '../../src/transforms';
import { runTransform, useCpuBackend } from './harness';

const STEPS = 8;

/** The transform with every optional option given as undefined, beside the one without them. */
const cases: Array<[string, () => T.StepTransform, () => T.StepTransform]> = [
  ['sgd', () => T.sgd({ lr: 0.05, momentum: 0.9 }), () => T.sgd({ lr: 0.05, momentum: 0.9, dampening: undefined, nesterov: undefined, weightDecay: undefined, name: undefined })],
  ['adam', () => T.adam({ lr: 0.05 }), () => T.adam({ lr: 0.05, b1: undefined, b2: undefined, eps: undefined, weightDecay: undefined, name: undefined })],
  ['adamw', () => T.adamw({ lr: 0.05 }), () => T.adamw({ lr: 0.05, b1: undefined, b2: undefined, eps: undefined, weightDecay: undefined, name: undefined })],
  ['rmsprop', () => T.rmsprop({ lr: 0.05 }), () => T.rmsprop({ lr: 0.05, decay: undefined, momentum: undefined, eps: undefined, name: undefined })],
  ['adagrad', () => T.adagrad({ lr: 0.05 }), () => T.adagrad({ lr: 0.05, initialAccumulatorValue: undefined, eps: undefined, name: undefined })],
  ['adadelta', () => T.adadelta({ lr: 0.5 }), () => T.adadelta({ lr: 0.5, rho: undefined, eps: undefined, name: undefined })],
  ['adamax', () => T.adamax({ lr: 0.05 }), () => T.adamax({ lr: 0.05, b1: undefined, b2: undefined, eps: undefined, name: undefined })],
  ['momentum', () => T.momentum({ momentum: 0.9 }), () => T.momentum({ momentum: 0.9, dampening: undefined, nesterov: undefined, name: undefined })],
  ['clipByGlobalNorm', () => T.clipByGlobalNorm(0.5), () => T.clipByGlobalNorm(0.5, { name: undefined })],
  ['optimizerByName', () => T.optimizerByName('rmsprop'), () => T.optimizerByName('rmsprop', { epsilon: undefined })],
];

describe('transforms: an option given as undefined is its default', () => {
  useCpuBackend();

  for (const [name, without, withUndefined] of cases) {
    it(`${name}: the same name and trajectory as without the options`, () => {
      const [a, b] = [without(), withUndefined()];
      expect(b.name).to.equal(a.name);
      const [ra, rb] = [runTransform(a, STEPS), runTransform(b, STEPS)];
      try {
        expect(rb.trajectory).to.deep.equal(ra.trajectory);
      } finally {
        ra.dispose();
        rb.dispose();
      }
    });
  }
});
