import * as tf from '@tensorflow/tfjs';
import { chain, momentum, nesterov, scaleByLearningRate, transformStep, type NamedTensors, type StepTransform, type TransformState } from '@tapfit/core';
import { seededRandom } from '@tapfit/core/testing';
import { expect } from 'chai';
import { predictByDelta, predictByVelocity, scaleHyperparameters, spikeCoefficients, spikeCompensation, stageDelays } from '../src';

/** Runs `transform` on one variable w over `grads` (a gradient per step); returns w after each step. */
function trajectory(transform: StepTransform, w0: number[], grads: (number[] | ((w: Float32Array) => number[]))[]): Float32Array[] {
  const w = tf.variable(tf.tensor1d(w0), true, 'w');
  let state: TransformState = tf.tidy(() => {
    const s = transform.init({ w });
    return s;
  });
  const keepAll = (s: TransformState) => Object.values(s).forEach((x) => (x instanceof tf.Tensor ? tf.keep(x) : typeof x === 'object' && Object.values(x).forEach((t) => t instanceof tf.Tensor && tf.keep(t))));
  keepAll(state);
  const out: Float32Array[] = [];
  grads.forEach((g, step) => {
    const gv = typeof g === 'function' ? g(w.dataSync() as Float32Array) : g;
    const gt: NamedTensors = { w: tf.tensor1d(gv) };
    state = transformStep(transform, { w }, gt, state, { step });
    tf.dispose(Object.values(gt));
    out.push(Float32Array.from(w.dataSync()));
  });
  tf.dispose([w]);
  return out;
}

const randomGrads = (n: number, dims: number, seed: number) => {
  const r = seededRandom(seed);
  return Array.from({ length: n }, () => Array.from({ length: dims }, () => r() * 2 - 1));
};

describe('stage delays (docs/techniques.md §5.2)', () => {
  it('D_s = 2 (S - s): [6, 4, 2, 0] for S = 4, [7, 5, 3, 1] with extraDelay 1, [0] for S = 1', () => {
    expect(stageDelays(4)).to.deep.equal([6, 4, 2, 0]);
    expect(stageDelays(4, 1)).to.deep.equal([7, 5, 3, 1]);
    expect(stageDelays(1)).to.deep.equal([0]);
    expect(() => stageDelays(0)).to.throw(/'stages' must be an integer >= 1/);
  });
});

describe('Spike Compensation (docs/techniques.md §5.3)', () => {
  const lr = 0.05;
  const m = 0.9;
  const sc = (delay: number) => chain(spikeCompensation({ momentum: m, delay }), scaleByLearningRate(lr));

  it('D = 0 is core momentum bit for bit', () => {
    const grads = randomGrads(20, 5, 1);
    const ours = trajectory(sc(0), [0.1, -0.2, 0.3, 0, 1], grads);
    const ref = trajectory(chain(momentum({ momentum: m }), scaleByLearningRate(lr)), [0.1, -0.2, 0.3, 0, 1], grads);
    ours.forEach((w, k) => expect(Array.from(w)).to.deep.equal(Array.from(ref[k])));
  });

  it('refuses a bad delay or momentum when built, and a velocity of another shape than its gradient at the update', () => {
    expect(() => spikeCompensation({ momentum: m, delay: -1 })).to.throw(/the delay of 'every variable' must be an integer >= 0 \(got -1\)/);
    expect(() => spikeCompensation({ momentum: m, delay: 1.5 })).to.throw(/must be an integer >= 0 \(got 1\.5\)/);
    expect(() => spikeCompensation({ momentum: 1, delay: 2 })).to.throw(/'momentum' must be in \[0, 1\)/);
    const t = spikeCompensation({ momentum: m, delay: 2 });
    const state = t.init({ w: tf.zeros([3]) });
    const g = { w: tf.ones([2, 3]) };
    expect(() => t.update(g, state, {}, { step: 0 } as never)).to.throw(/the velocity of 'w' is \[3\] but its gradient \[2,3\]/);
    tf.dispose([...Object.values(state.velocity), g.w]);
  });

  it('a parameter without a gradient for a step keeps its velocity (nothing is dropped or freed)', () => {
    const t = spikeCompensation({ momentum: m, delay: 2 });
    const state0 = t.init({ a: tf.zeros([2]), b: tf.zeros([2]) });
    const [out1, state1] = t.update({ a: tf.ones([2]), b: tf.ones([2]) }, state0, {}, { step: 0 } as never);
    const [out2, state2] = t.update({ a: tf.ones([2]) }, state1, {}, { step: 1 } as never);
    expect(Object.keys(state2.velocity).sort()).to.deep.equal(['a', 'b']);
    expect(state2.velocity.b).to.equal(state1.velocity.b);
    expect(Array.from(state2.velocity.b.dataSync())).to.deep.equal([1, 1]);
    expect(Object.keys(out2)).to.deep.equal(['a']);
    tf.dispose([...Object.values(state0.velocity), ...Object.values(out1), ...Object.values(state1.velocity), ...Object.values(out2), state2.velocity.a]);
  });

  it("D = 1 is core's Nesterov momentum step by step (bit for bit)", () => {
    const grads = randomGrads(20, 5, 2);
    const ours = trajectory(sc(1), [0.1, -0.2, 0.3, 0, 1], grads);
    const ref = trajectory(chain(nesterov({ momentum: m }), scaleByLearningRate(lr)), [0.1, -0.2, 0.3, 0, 1], grads);
    ours.forEach((w, k) => expect(Array.from(w), `step ${k}`).to.deep.equal(Array.from(ref[k])));
    // And it is not plain momentum (the test can fail).
    const plain = trajectory(chain(momentum({ momentum: m }), scaleByLearningRate(lr)), [0.1, -0.2, 0.3, 0, 1], grads);
    expect(Array.from(plain[3])).to.not.deep.equal(Array.from(ours[3]));
  });

  for (const delay of [2, 6]) {
    it(`impulse response for D = ${delay}: -lr (a + b) g at the first step, -lr m^(D+k) g after, total -lr g / (1 - m)`, () => {
      const g = [1, -2];
      const steps = 400;
      const grads = [g, ...Array.from({ length: steps - 1 }, () => [0, 0])];
      const w = trajectory(sc(delay), [0, 0], grads);
      const { a, b } = spikeCoefficients(m, delay);
      expect(a + b).to.be.closeTo((1 - m ** (delay + 1)) / (1 - m), 1e-12); // the spike is what undelayed SGDM applied by then
      const moves = w.map((wk, k) => Array.from(wk).map((x, i) => x - (k === 0 ? 0 : w[k - 1][i])));
      g.forEach((gi, i) => {
        expect(moves[0][i]).to.be.closeTo(-lr * (a + b) * gi, 1e-6);
        for (let k = 1; k < 30; k++) expect(moves[k][i], `step ${k}`).to.be.closeTo(-lr * m ** (delay + k) * gi, 1e-6);
        expect(w[steps - 1][i]).to.be.closeTo((-lr * gi) / (1 - m), 1e-4);
      });
    });
  }
});

describe('Linear Weight Prediction (docs/techniques.md §5.4)', () => {
  const lr = 0.01;
  const m = 0.9;
  const D = 6;

  for (const [label, make] of [
    ['plain SGDM', () => chain(momentum({ momentum: m }), scaleByLearningRate(lr))],
    ['SGDM with Spike Compensation', () => chain(spikeCompensation({ momentum: m, delay: D }), scaleByLearningRate(lr))],
  ] as const) {
    it(`is exact under a constant gradient once the velocity has settled (${label}), both forms`, () => {
      const g = [0.5, -1, 2];
      const w = trajectory(make(), [0, 0, 0], Array.from({ length: 400 }, () => g));
      const k = 300; // v = g / (1 - m) to float precision by now
      const velocity = tf.tensor1d(g.map((x) => x / (1 - m)));
      const wk = tf.tensor1d(w[k]);
      const byVelocity = predictByVelocity(wk, velocity, D * lr).dataSync();
      const byDelta = predictByDelta(wk, tf.tensor1d(w[k - 1]), D).dataSync();
      g.forEach((_, i) => {
        expect(byVelocity[i]).to.be.closeTo(w[k + D][i], 1e-4);
        expect(byDelta[i]).to.be.closeTo(w[k + D][i], 1e-4);
      });
      // Not trivially: the weights moved by much more than the tolerance in those D steps.
      expect(Math.abs(w[k + D][2] - w[k][2])).to.be.above(0.5);
      tf.dispose([velocity, wk]);
    });
  }

  it('both forms agree on plain SGDM at every step (random gradients), and differ under SC', () => {
    const grads = randomGrads(30, 4, 3);
    for (const [transform, agree] of [
      [chain(momentum({ momentum: m }), scaleByLearningRate(lr)), true],
      [chain(spikeCompensation({ momentum: m, delay: D }), scaleByLearningRate(lr)), false],
    ] as const) {
      // Track the velocity alongside: v_k = m v_{k-1} + g_k.
      const w = trajectory(transform, [0, 0, 0, 0], grads);
      let v = [0, 0, 0, 0];
      let maxDiff = 0;
      grads.forEach((g, k) => {
        v = v.map((x, i) => m * x + g[i]);
        if (k === 0) return;
        const wk = tf.tensor1d(w[k]);
        const a = predictByVelocity(wk, tf.tensor1d(v), D * lr).dataSync();
        const b = predictByDelta(wk, tf.tensor1d(w[k - 1]), D).dataSync();
        for (let i = 0; i < 4; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i] - b[i]));
        tf.dispose(wk);
      });
      if (agree) expect(maxDiff).to.be.below(1e-6);
      else expect(maxDiff).to.be.above(1e-4);
    }
  });

  it('D = 0 changes nothing', () => {
    const w = tf.tensor1d([1, 2]);
    expect(Array.from(predictByVelocity(w, tf.tensor1d([5, 5]), 0).dataSync())).to.deep.equal([1, 2]);
    expect(Array.from(predictByDelta(w, tf.tensor1d([0, 0]), 0).dataSync())).to.deep.equal([1, 2]);
  });
});

describe('scaleHyperparameters (docs/techniques.md §5.5, PyTorch-form momentum)', () => {
  it('returns the reference at B = B_ref', () => {
    expect(scaleHyperparameters({ lr: 0.01, momentum: 0.9, referenceBatchSize: 32, batchSize: 32 })).to.deep.equal({ lr: 0.01, momentum: 0.9 });
  });

  it("gives the section's example: B_ref 32, lr 0.01, m 0.9 -> m_1 = 0.99671, lr_1 = 1.03e-5", () => {
    const { lr, momentum: m1 } = scaleHyperparameters({ lr: 0.01, momentum: 0.9, referenceBatchSize: 32, batchSize: 1 });
    expect(m1).to.be.closeTo(0.99671, 1e-5);
    expect(lr).to.be.closeTo(1.03e-5, 0.01e-5);
  });

  it("keeps each sample's total step lr / (1 - m) / B and the momentum horizon in samples fixed at any B", () => {
    const ref = { lr: 0.1, momentum: 0.95, referenceBatchSize: 16 };
    for (const B of [1, 2, 8, 64, 256]) {
      const s = scaleHyperparameters({ ...ref, batchSize: B });
      expect(s.lr / (1 - s.momentum) / B).to.be.closeTo(ref.lr / (1 - ref.momentum) / ref.referenceBatchSize, 1e-12);
      // Horizon: after n samples a gradient's weight decays by m^(n/B), the same at every B.
      expect(s.momentum ** (64 / B)).to.be.closeTo(ref.momentum ** (64 / ref.referenceBatchSize), 1e-12);
    }
  });

  it('refuses bad input naming the option', () => {
    expect(() => scaleHyperparameters({ lr: 0.1, momentum: 1, referenceBatchSize: 32, batchSize: 1 })).to.throw(/'momentum' must be in \[0, 1\)/);
    expect(() => scaleHyperparameters({ lr: 0.1, momentum: 0.9, referenceBatchSize: 32, batchSize: 0 })).to.throw(/'batchSize'/);
  });
});
