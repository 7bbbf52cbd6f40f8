import * as tf from '@tensorflow/tfjs';
import { mapNamed, momentum, scaleByLearningRate, sgd, type StepTransform } from '@tapfit/core';
import { describeConformance } from '@tapfit/core/testing';
import { expect } from 'chai';
import { gradientScale } from '../src';

/**
 * The functional twin's piece: a step transform that multiplies the updates by `factor`.
 * `update` returns the new updates and the transform's next state (it has none).
 */
function scaleBy(factor: number): StepTransform {
  return {
    name: 'scale',
    hyperparams: { factor },
    init: () => ({}),
    update: (updates, state) => [mapNamed(updates, (u) => tf.mul(u, factor)), state],
  };
}

// The kit trains its tiny MLP with sgd({ lr: 0.1, momentum: 0.9 }) (testTrainerOptions), so
// the twin is that chain with the scaling first: momentum, then the learning rate.
describeConformance({
  plugin: () => gradientScale({ factor: 0.5 }),
  twin: () => ({ optimizer: [scaleBy(0.5), momentum({ momentum: 0.9 }), scaleByLearningRate(0.1)] }),
  twinTolerance: 0,
});

describe('gradient-scale', () => {
  it('the twin reproduces the kit default: sgd({ lr: 0.1, momentum: 0.9 }) is momentum then the learning rate', () => {
    expect(sgd({ lr: 0.1, momentum: 0.9 }).transforms.map((t) => t.name)).to.deep.equal(['momentum', 'lr']);
  });

  it("refuses a factor that is not > 0, naming the option", () => {
    for (const factor of [0, -1, NaN]) expect(() => gradientScale({ factor })).to.throw(/gradient-scale: option 'factor' must be > 0/);
  });
});
