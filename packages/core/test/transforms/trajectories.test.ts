// Each optimizer's 60-step trajectory against the float64 PyTorch-algorithm oracle.

import { expect } from 'chai';
import {
  adadelta,
  adagrad,
  adam,
  adamax,
  adamw,
  addDecayedWeights,
  chain,
  clipByGlobalNorm,
  constant,
  cosineDecay,
  linearWarmup,
  momentum,
  nesterov,
  optimizerByName,
  rmsprop,
  scaleByAdam,
  scaleByLearningRate,
  sgd,
  stepDecay,
  type StepTransform,
} from '../../src/transforms';
import { expectMoved, expectTrajectoryClose, runTransform, useCpuBackend } from './harness';
import { problem, referenceTrajectory, refAdadelta, refAdagrad, refAdam, refAdamax, refClipped, refRmsprop, refSgd, type Params, type RefOptimizer } from './reference';

const STEPS = 60;

/** Run the transform and the oracle and compare every step; returns the tf trajectory. */
function check(t: StepTransform, ref: RefOptimizer, tol?: { rtol: number; atol: number }): Params[] {
  const run = runTransform(t, STEPS);
  try {
    const expected = referenceTrajectory(problem, ref, STEPS);
    expectMoved(expected);
    expectTrajectoryClose(run.trajectory, expected, tol);
    return run.trajectory;
  } finally {
    run.dispose();
  }
}

describe('transforms: trajectories against the float64 reference', () => {
  useCpuBackend();

  it('sgd: w -= lr g', () => {
    check(sgd({ lr: 0.05 }), refSgd({ lr: constant(0.05) }));
  });

  it('chain(momentum, scaleByLearningRate) is SGDM in the PyTorch form (docs/techniques.md §0.1)', () => {
    const manual = check(
      chain(momentum({ momentum: 0.9 }), scaleByLearningRate(0.02)),
      refSgd({ lr: constant(0.02), momentum: 0.9 }),
    );
    // sgd() builds the same chain, so it must agree bit for bit.
    const built = runTransform(sgd({ lr: 0.02, momentum: 0.9 }), STEPS);
    expect(built.trajectory).to.deep.equal(manual);
    built.dispose();
  });

  it('momentum with dampening (undamped first step, as PyTorch)', () => {
    check(sgd({ lr: 0.03, momentum: 0.8, dampening: 0.3 }), refSgd({ lr: constant(0.03), momentum: 0.8, dampening: 0.3 }));
  });

  it('dampening without momentum is ignored, as torch.optim.SGD does (no momentum member, w -= lr g)', () => {
    const opt = sgd({ lr: 0.05, dampening: 0.5 });
    expect(opt.transforms.map((t) => t.name)).to.deep.equal(['lr']);
    const dampened = check(opt, refSgd({ lr: constant(0.05), dampening: 0.5 }));
    const plain = runTransform(sgd({ lr: 0.05 }), STEPS);
    expect(dampened).to.deep.equal(plain.trajectory);
    plain.dispose();
  });

  it('nesterov: v = m v + g, step along g + m v', () => {
    const ref = () => refSgd({ lr: constant(0.02), momentum: 0.9, nesterov: true });
    const viaSgd = check(sgd({ lr: 0.02, momentum: 0.9, nesterov: true }), ref());
    const viaChain = check(chain(nesterov({ momentum: 0.9 }), scaleByLearningRate(0.02)), ref());
    expect(viaChain).to.deep.equal(viaSgd);
  });

  it('coupled weight decay before momentum: g = grad + lambda w', () => {
    check(
      sgd({ lr: 0.02, momentum: 0.9, weightDecay: 0.05 }),
      refSgd({ lr: constant(0.02), momentum: 0.9, weightDecay: 0.05 }),
    );
  });

  it('adam with bias correction', () => {
    check(adam({ lr: 0.05 }), refAdam({ lr: constant(0.05), b1: 0.9, b2: 0.999, eps: 1e-8 }));
  });

  it('adam with non-default betas and eps, and coupled L2 weight decay', () => {
    check(
      adam({ lr: 0.04, b1: 0.8, b2: 0.95, eps: 1e-3, weightDecay: 0.1 }),
      refAdam({ lr: constant(0.04), b1: 0.8, b2: 0.95, eps: 1e-3, weightDecay: 0.1 }),
    );
  });

  it('adamw: decoupled decay w -= lr (adam + lambda w)', () => {
    check(
      adamw({ lr: 0.05, weightDecay: 0.2 }),
      refAdam({ lr: constant(0.05), b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 0.2, decoupled: true }),
    );
    // The same decay placed before adam is L2, a different (and here distinguishable) optimizer.
    const coupled = runTransform(chain(addDecayedWeights(0.2), scaleByAdam(), scaleByLearningRate(0.05)), STEPS);
    const decoupled = runTransform(adamw({ lr: 0.05, weightDecay: 0.2 }), STEPS);
    expect(Math.abs(coupled.trajectory[STEPS - 1].w1[0] - decoupled.trajectory[STEPS - 1].w1[0])).to.be.greaterThan(1e-3);
    coupled.dispose();
    decoupled.dispose();
  });

  describe('tfjs-core optimizers as chains (rmsprop, adagrad, adadelta, adamax)', () => {
    it('rmsprop: w -= lr g / sqrt(ms + eps)', () => {
      check(rmsprop({ lr: 0.01 }), refRmsprop({ lr: 0.01, decay: 0.9, momentum: 0, eps: 1e-7 }));
    });

    it('rmsprop with momentum and a non-default decay and eps', () => {
      check(rmsprop({ lr: 0.005, decay: 0.8, momentum: 0.7, eps: 1e-3 }), refRmsprop({ lr: 0.005, decay: 0.8, momentum: 0.7, eps: 1e-3 }));
    });

    it('adagrad: the accumulator starts at 0.1', () => {
      check(adagrad({ lr: 0.2 }), refAdagrad({ lr: 0.2, initial: 0.1, eps: 1e-7 }));
      check(adagrad({ lr: 0.2, initialAccumulatorValue: 2, eps: 1e-4 }), refAdagrad({ lr: 0.2, initial: 2, eps: 1e-4 }));
    });

    it("adadelta in tfjs's order (old squared-gradient mean in the denominator)", () => {
      // The first step is -lr g; lr 0.1 keeps the quartic problem from diverging.
      check(adadelta({ lr: 0.1, rho: 0.9, eps: 1e-2 }), refAdadelta({ lr: 0.1, rho: 0.9, eps: 1e-2 }));
    });

    it('adamax with bias correction of the first moment', () => {
      check(adamax({ lr: 0.05 }), refAdamax({ lr: 0.05, b1: 0.9, b2: 0.999, eps: 1e-7 }));
      check(adamax({ lr: 0.03, b1: 0.7, b2: 0.9, eps: 1e-3 }), refAdamax({ lr: 0.03, b1: 0.7, b2: 0.9, eps: 1e-3 }));
    });

    it('names give the defaults of model.compile', () => {
      // adadelta's default lr 1 makes its first step -g, which sends this quartic problem
      // off after a few steps: its default is compared over the steps before that.
      const pairs: Array<[string, RefOptimizer, number]> = [
        ['rmsprop', refRmsprop({ lr: 0.001, decay: 0.9, momentum: 0, eps: 1e-7 }), STEPS],
        ['adagrad', refAdagrad({ lr: 0.01, initial: 0.1, eps: 1e-7 }), STEPS],
        ['adadelta', refAdadelta({ lr: 1, rho: 0.95, eps: 1e-7 }), 3],
        ['adamax', refAdamax({ lr: 0.002, b1: 0.9, b2: 0.999, eps: 1e-7 }), STEPS],
        ['adam', refAdam({ lr: constant(0.001), b1: 0.9, b2: 0.999, eps: 1e-7 }), STEPS],
        ['sgd', refSgd({ lr: constant(0.01) }), STEPS],
        ['momentum', refSgd({ lr: constant(0.01), momentum: 0.9 }), STEPS],
      ];
      for (const [name, ref, steps] of pairs) {
        const run = runTransform(optimizerByName(name), steps);
        try {
          expectTrajectoryClose(run.trajectory, referenceTrajectory(problem, ref, steps));
        } finally {
          run.dispose();
        }
      }
    });
  });

  describe('clipByGlobalNorm', () => {
    it('clipped regime: every step scaled to the max norm', () => {
      const clipped: boolean[] = [];
      check(
        chain(clipByGlobalNorm(0.5), sgd({ lr: 0.05, momentum: 0.5 })),
        refClipped(0.5, refSgd({ lr: constant(0.05), momentum: 0.5 }), (c) => clipped.push(c)),
      );
      expect(clipped.every(Boolean), 'the oracle clipped every step').to.equal(true);
    });

    it('unclipped regime: updates pass through exactly', () => {
      const plain = runTransform(sgd({ lr: 0.05, momentum: 0.5 }), STEPS);
      const loose = runTransform(chain(clipByGlobalNorm(1e3), sgd({ lr: 0.05, momentum: 0.5 })), STEPS);
      expect(loose.trajectory).to.deep.equal(plain.trajectory);
      plain.dispose();
      loose.dispose();
    });

    it('crossing between regimes mid-run', () => {
      const clipped: boolean[] = [];
      check(
        chain(clipByGlobalNorm(2), sgd({ lr: 0.05, momentum: 0.5 })),
        refClipped(2, refSgd({ lr: constant(0.05), momentum: 0.5 }), (c) => clipped.push(c)),
      );
      expect(clipped.some(Boolean) && clipped.some((c) => !c), 'both regimes occur').to.equal(true);
    });
  });

  describe('with schedules', () => {
    it('sgd with linear warmup into cosine decay', () => {
      const lr = () => linearWarmup({ warmupSteps: 10, then: cosineDecay({ initial: 0.05, decaySteps: 40, final: 0.005 }) });
      check(sgd({ lr: lr(), momentum: 0.9 }), refSgd({ lr: lr(), momentum: 0.9 }));
    });

    it('adamw with step decay', () => {
      const lr = () => stepDecay({ initial: 0.08, stepSize: 15, gamma: 0.5 });
      check(
        adamw({ lr: lr(), weightDecay: 0.01 }),
        refAdam({ lr: lr(), b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 0.01, decoupled: true }),
      );
    });

    it('the schedule follows the transform\'s own count, not ctx.step', () => {
      const lr = stepDecay({ initial: 0.05, stepSize: 10, gamma: 0.3 });
      const fromZero = runTransform(sgd({ lr }), 25);
      const fromLater = runTransform(sgd({ lr }), 25, { firstStep: 1000 });
      expect(fromLater.trajectory).to.deep.equal(fromZero.trajectory);
      fromZero.dispose();
      fromLater.dispose();
    });
  });
});
