// Bad options fail at construction with a coded error naming the constructor and option.

import { expect } from 'chai';
import * as T from '../../src/transforms';
import type { Schedule } from '../../src/transforms';

const cases: Array<[string, () => unknown, string]> = [
  ['negative lr', () => T.sgd({ lr: -0.1 }), "sgd: option 'lr' must be >= 0 (got -0.1)"],
  ['NaN lr', () => T.scaleByLearningRate(NaN), "scaleByLearningRate: option 'lr' must be a number >= 0 or a schedule"],
  ['lr of the wrong type', () => T.adam({ lr: '0.1' as unknown as number }), "adam: option 'lr' must be a number >= 0 or a schedule (step) => number (got '0.1')"],
  ['momentum = 1', () => T.sgd({ lr: 0.1, momentum: 1 }), "sgd: option 'momentum' must be in [0, 1) (got 1)"],
  ['negative momentum', () => T.momentum({ momentum: -0.5 }), "momentum: option 'momentum' must be in [0, 1) (got -0.5)"],
  ['dampening > 1', () => T.momentum({ momentum: 0.9, dampening: 1.5 }), "momentum: option 'dampening' must be in [0, 1] (got 1.5)"],
  ['dampening > 1 without momentum (ignored, but still checked)', () => T.sgd({ lr: 0.1, dampening: 1.5 }), "sgd: option 'dampening' must be in [0, 1] (got 1.5)"],
  ['nesterov without momentum', () => T.sgd({ lr: 0.1, nesterov: true }), "momentum: option 'nesterov' needs momentum > 0 and dampening 0"],
  ['nesterov with dampening', () => T.sgd({ lr: 0.1, momentum: 0.9, nesterov: true, dampening: 0.1 }), "option 'nesterov' needs momentum > 0 and dampening 0"],
  ['misspelt option', () => T.sgd({ lr: 0.1, weight_decay: 1e-4 } as unknown as T.SgdOptions), "sgd: unknown option(s) 'weight_decay'"],
  ['negative weight decay', () => T.adamw({ lr: 0.1, weightDecay: -1 }), "adamw: option 'weightDecay' must be >= 0 (got -1)"],
  ['b1 = 1', () => T.scaleByAdam({ b1: 1 }), "scaleByAdam: option 'b1' must be in [0, 1) (got 1)"],
  ['b2 > 1 via adam', () => T.adam({ lr: 0.1, b2: 1.2 }), "adam: option 'b2' must be in [0, 1) (got 1.2)"],
  ['negative eps', () => T.scaleByAdam({ eps: -1e-8 }), "scaleByAdam: option 'eps' must be >= 0"],
  ['zero max norm', () => T.clipByGlobalNorm(0), "clipByGlobalNorm: option 'maxNorm' must be > 0 (got 0)"],
  ['mask not a function', () => T.addDecayedWeights(0.1, { mask: 'bias' as unknown as () => boolean }), "addDecayedWeights: option 'mask' must be a function (paramName) => boolean (got 'bias')"],
  ['empty name', () => T.momentum({ momentum: 0.9, name: '' }), "momentum: option 'name' must be a non-empty string"],
  ['rms decay = 1', () => T.scaleByRms({ decay: 1 }), "scaleByRms: option 'decay' must be in [0, 1) (got 1)"],
  ['rmsprop momentum typo', () => T.rmsprop({ lr: 0.1, momentun: 0.9 } as unknown as T.RmspropOptions), "rmsprop: unknown option(s) 'momentun' (did you mean 'momentum'?)"],
  ['negative adagrad accumulator', () => T.adagrad({ lr: 0.1, initialAccumulatorValue: -1 }), "adagrad: option 'initialAccumulatorValue' must be >= 0 (got -1)"],
  ['adadelta rho = 1', () => T.scaleByAdadelta({ rho: 1 }), "scaleByAdadelta: option 'rho' must be in [0, 1) (got 1)"],
  ['adamax negative eps', () => T.adamax({ lr: 0.1, eps: -1 }), "adamax: option 'eps' must be >= 0 (got -1)"],
  ['unknown optimizer name', () => T.optimizerByName('rmsprob'), "optimizer: unknown name 'rmsprob' (did you mean 'rmsprop'?). Accepted names: sgd, momentum, adam, adamax, rmsprop, adagrad, adadelta"],
  ['constant < 0', () => T.constant(-1), "constant: option 'value' must be >= 0 (got -1)"],
  ['fractional stepSize', () => T.stepDecay({ initial: 0.1, stepSize: 2.5, gamma: 0.1 }), "stepDecay: option 'stepSize' must be an integer number of steps (got 2.5)"],
  ['zero gamma', () => T.stepDecay({ initial: 0.1, stepSize: 2, gamma: 0 }), "stepDecay: option 'gamma' must be > 0 (got 0)"],
  ['decaySteps 0', () => T.cosineDecay({ initial: 0.1, decaySteps: 0 }), "cosineDecay: option 'decaySteps' must be >= 1 (got 0)"],
  ['final and alpha', () => T.cosineDecay({ initial: 1, decaySteps: 10, final: 0, alpha: 0.1 }), "cosineDecay: option 'final' and 'alpha' both give the end value; pass only one"],
  ['alpha > 1', () => T.cosineDecay({ initial: 1, decaySteps: 10, alpha: 2 }), "cosineDecay: option 'alpha' must be in [0, 1] (got 2)"],
  ['warmup then not a schedule', () => T.linearWarmup({ warmupSteps: 5, then: 0.1 as unknown as Schedule }), "linearWarmup: option 'then' must be a function (step) => number (got 0.1)"],
  ['negative warmup', () => T.linearWarmup({ warmupSteps: -1, then: T.constant(1) }), "linearWarmup: option 'warmupSteps' must be >= 0 (got -1)"],
  ['unsorted boundaries', () => T.piecewiseConstant({ values: [1, 2, 3], boundaries: [5, 5] }), "piecewiseConstant: option 'boundaries' must be strictly increasing (got 5,5)"],
  ['values/boundaries count', () => T.piecewiseConstant({ values: [1, 2], boundaries: [5, 6] }), "piecewiseConstant: option 'values' must have exactly one more entry than boundaries"],
  ['join count', () => T.joinSchedules([T.constant(1)], [3]), "joinSchedules: option 'schedules' must have exactly one more entry than boundaries"],
];

describe('transforms: option validation', () => {
  for (const [label, make, message] of cases) {
    it(label, () => {
      expect(make).to.throw(message).with.property('code', 'TAPFIT_E_CONFIG');
    });
  }

  it('valid edge values are accepted', () => {
    expect(() => T.sgd({ lr: 0, momentum: 0 })).not.to.throw();
    expect(() => T.momentum({ momentum: 0.999, dampening: 1 })).not.to.throw();
    expect(() => T.scaleByAdam({ b1: 0, b2: 0, eps: 0 })).not.to.throw();
    expect(() => T.cosineDecay({ initial: 1, decaySteps: 1, alpha: 1 })).not.to.throw();
  });
});
