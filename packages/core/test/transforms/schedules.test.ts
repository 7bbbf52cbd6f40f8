import { expect } from 'chai';
import * as tf from '@tensorflow/tfjs';
import {
  constant,
  cosineDecay,
  joinSchedules,
  linear,
  linearWarmup,
  piecewiseConstant,
  scaleByLearningRate,
  stepDecay,
  type Schedule,
} from '../../src/transforms';
import { useCpuBackend } from './harness';

const at = (s: Schedule, steps: number[]) => steps.map((t) => s(t));
const close = (actual: number[], expected: number[]) =>
  actual.forEach((a, i) => expect(a, `entry ${i}`).to.be.closeTo(expected[i], 1e-12));

describe('transforms: schedules', () => {
  useCpuBackend();

  it('constant', () => {
    expect(at(constant(0.3), [0, 1, 1e6])).to.deep.equal([0.3, 0.3, 0.3]);
  });

  it('linear: from at 0, to at steps and after', () => {
    close(at(linear({ from: 1, to: 0.2, steps: 8 }), [0, 2, 4, 8, 100]), [1, 0.8, 0.6, 0.2, 0.2]);
  });

  it('stepDecay: drops by gamma exactly at multiples of stepSize', () => {
    close(at(stepDecay({ initial: 0.1, stepSize: 30, gamma: 0.1 }), [0, 29, 30, 59, 60, 90]), [0.1, 0.1, 0.01, 0.01, 0.001, 1e-4]);
  });

  it('piecewiseConstant: boundaries are inclusive starts', () => {
    expect(at(piecewiseConstant({ values: [3, 2, 1], boundaries: [5, 10] }), [0, 4, 5, 9, 10, 50])).to.deep.equal([3, 3, 2, 2, 1, 1]);
  });

  it('cosineDecay: initial at 0, midpoint at half, final at decaySteps and after', () => {
    close(at(cosineDecay({ initial: 1, decaySteps: 100, final: 0.1 }), [0, 50, 100, 1000]), [1, 0.55, 0.1, 0.1]);
    close(at(cosineDecay({ initial: 2, decaySteps: 10, alpha: 0.25 }), [0, 5, 10]), [2, 1.25, 0.5]);
    close(at(cosineDecay({ initial: 2, decaySteps: 10 }), [0, 10]), [2, 0]);
    // An interior point against the formula written out.
    expect(cosineDecay({ initial: 1, decaySteps: 100 })(25)).to.be.closeTo(0.5 * (1 + Math.cos(Math.PI / 4)), 1e-12);
  });

  it('joinSchedules restarts each piece at its boundary', () => {
    const s = joinSchedules([constant(5), linear({ from: 1, to: 0, steps: 10 }), (t) => 100 + t], [3, 13]);
    close(at(s, [0, 2, 3, 8, 12, 13, 20]), [5, 5, 1, 0.5, 0.1, 100, 107]);
  });

  it('linearWarmup: from -> then(0) over warmupSteps, then `then` from its own step 0', () => {
    const then = cosineDecay({ initial: 0.4, decaySteps: 20, final: 0 });
    const s = linearWarmup({ warmupSteps: 4, then });
    close(at(s, [0, 1, 2, 4, 14, 24, 30]), [0, 0.1, 0.2, 0.4, 0.2, 0, 0]);
    close(at(linearWarmup({ warmupSteps: 2, then: constant(1), from: 0.5 }), [0, 1, 2]), [0.5, 0.75, 1]);
    expect(linearWarmup({ warmupSteps: 0, then })).to.equal(then);
  });

  describe('scaleByLearningRate', () => {
    it('emits -lr(count) * u and counts its own steps', () => {
      const t = scaleByLearningRate(stepDecay({ initial: 2, stepSize: 2, gamma: 0.5 }));
      let state = t.init({});
      const emitted: number[] = [];
      for (let i = 0; i < 5; i++) {
        const x = tf.scalar(3);
        const [u, next] = t.update({ x }, state, {}, { step: 99 });
        emitted.push(u.x.dataSync()[0]);
        tf.dispose([x, u.x]);
        state = next;
      }
      expect(emitted).to.deep.equal([-6, -6, -3, -3, -1.5]);
      expect(state).to.deep.equal({ count: 5 });
    });

    it('resumes the schedule from a restored count', () => {
      const t = scaleByLearningRate((step) => step);
      const x = tf.scalar(1);
      const [u] = t.update({ x }, { count: 7 }, {}, { step: 0 });
      expect(u.x.dataSync()[0]).to.equal(-7);
      tf.dispose([x, u.x]);
    });

    it('rejects a schedule value that is negative or not finite, naming the step', () => {
      for (const bad of [-0.1, NaN, Infinity]) {
        const t = scaleByLearningRate((step) => (step === 3 ? bad : 0.1));
        expect(() => tf.tidy(() => t.update({ x: tf.scalar(1) }, { count: 3 }, {}, { step: 3 })[0]))
          .to.throw(/scaleByLearningRate\('lr'\): the schedule gave .* at step 3/)
          .with.property('code', 'TAPFIT_E_CONFIG');
      }
    });
  });
});
