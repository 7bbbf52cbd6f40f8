// A parameter with no gradient for a step (tf.variableGrads leaves out variables the loss
// does not reach; a backward tap may return a subset) is skipped and keeps its optimizer
// state, as tf.train and torch.optim skip a null gradient. Its buffers must survive the
// step: the next update for it needs them, and a checkpoint saved meanwhile must match init.

import { expect } from 'chai';
import {
  adadelta,
  adagrad,
  adam,
  adamax,
  adamw,
  chain,
  checkStateMatches,
  clipByGlobalNorm,
  constant,
  deserializeState,
  disposeState,
  rmsprop,
  serializeState,
  sgd,
  type Chain,
} from '../../src/transforms';
import { expectMoved, expectTrajectoryClose, runTransform, useCpuBackend } from './harness';
import {
  problem,
  referenceTrajectory,
  refAdadelta,
  refAdagrad,
  refAdam,
  refAdamax,
  refClipped,
  refRmsprop,
  refSgd,
  type RefOptimizer,
  type Withheld,
} from './reference';

const STEPS = 16;
/** w2 misses one step; b misses two in a row. */
const WITHHELD: Withheld = { 3: ['w2'], 7: ['b'], 8: ['b'] };
/** Where the round-trip test saves: right after w2's missing step. */
const SAVE_AFTER = 4;

// One per optimizer family (each stateful transform at least once); fresh instances each call.
const families: Record<string, [() => Chain, () => RefOptimizer]> = {
  'sgd with momentum, dampening and weight decay': [
    () => sgd({ lr: 0.03, momentum: 0.8, dampening: 0.3, weightDecay: 0.05 }),
    () => refSgd({ lr: constant(0.03), momentum: 0.8, dampening: 0.3, weightDecay: 0.05 }),
  ],
  'sgd with nesterov': [() => sgd({ lr: 0.02, momentum: 0.9, nesterov: true }), () => refSgd({ lr: constant(0.02), momentum: 0.9, nesterov: true })],
  adam: [() => adam({ lr: 0.05 }), () => refAdam({ lr: constant(0.05), b1: 0.9, b2: 0.999, eps: 1e-8 })],
  adamw: [
    () => adamw({ lr: 0.05, weightDecay: 0.2 }),
    () => refAdam({ lr: constant(0.05), b1: 0.9, b2: 0.999, eps: 1e-8, weightDecay: 0.2, decoupled: true }),
  ],
  'rmsprop with momentum': [
    () => rmsprop({ lr: 0.005, decay: 0.8, momentum: 0.7, eps: 1e-3 }),
    () => refRmsprop({ lr: 0.005, decay: 0.8, momentum: 0.7, eps: 1e-3 }),
  ],
  adagrad: [() => adagrad({ lr: 0.2 }), () => refAdagrad({ lr: 0.2, initial: 0.1, eps: 1e-7 })],
  adadelta: [() => adadelta({ lr: 0.1, rho: 0.9, eps: 1e-2 }), () => refAdadelta({ lr: 0.1, rho: 0.9, eps: 1e-2 })],
  adamax: [() => adamax({ lr: 0.05 }), () => refAdamax({ lr: 0.05, b1: 0.9, b2: 0.999, eps: 1e-7 })],
  'clip + sgd with momentum (the norm over the gradients present)': [
    () => chain('clipped', clipByGlobalNorm(0.5), sgd({ lr: 0.05, momentum: 0.5 })),
    () => refClipped(0.5, refSgd({ lr: constant(0.05), momentum: 0.5 })),
  ],
};

/** `withheld` as seen by a run that starts `offset` steps later. */
function shifted(withheld: Withheld, offset: number): Withheld {
  const out: Withheld = {};
  for (const [step, keys] of Object.entries(withheld)) if (Number(step) >= offset) out[Number(step) - offset] = keys;
  return out;
}

describe('transforms: a parameter without a gradient for some steps', () => {
  useCpuBackend();

  for (const [label, [make, ref]] of Object.entries(families)) {
    describe(label, () => {
      it('is skipped and keeps its state: values follow the float64 reference, tensor count stays flat', () => {
        const run = runTransform(make(), STEPS, { withheld: WITHHELD });
        try {
          const expected = referenceTrajectory(problem, ref(), STEPS, WITHHELD);
          expectMoved(expected);
          expectTrajectoryClose(run.trajectory, expected);
          // The withheld parameter did not move on its missing step.
          expect(run.trajectory[3].w2).to.deep.equal(run.trajectory[2].w2);
          expect(run.trajectory[8].b).to.deep.equal(run.trajectory[6].b);
          // Its buffers were neither dropped nor duplicated.
          expect(new Set(run.tensorCounts).size, `tensor counts: ${run.tensorCounts.join(', ')}`).to.equal(1);
        } finally {
          run.dispose();
        }
      });

      it('a state saved right after the missing step matches init and resumes bit for bit', () => {
        const first = runTransform(make(), SAVE_AFTER, { withheld: WITHHELD });
        const restored = deserializeState(JSON.parse(JSON.stringify(serializeState(first.state))));
        const template = make().init(first.params);
        checkStateMatches(template, restored);
        disposeState(template, []);
        const resumed = runTransform(make(), STEPS - SAVE_AFTER, {
          params: first.trajectory[SAVE_AFTER - 1],
          state: restored as ReturnType<Chain['init']>,
          firstStep: SAVE_AFTER,
          withheld: shifted(WITHHELD, SAVE_AFTER),
        });
        const whole = runTransform(make(), STEPS, { withheld: WITHHELD });
        expect([...first.trajectory, ...resumed.trajectory]).to.deep.equal(whole.trajectory);
        whole.dispose();
        first.dispose();
        resumed.dispose();
      });
    });
  }
});
