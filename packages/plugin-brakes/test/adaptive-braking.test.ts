import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import {
  addDecayedWeights,
  chain,
  checkStateMatches,
  clipByGlobalNorm,
  deserializeState,
  momentum,
  scaleByLearningRate,
  serializeState,
  stateTensors,
  transformStep,
  type NamedTensors,
  type TransformState,
} from '@tapfit/core';
import { adaptiveBraking, DEFAULT_RHO, withAdaptiveBraking, type AdaptiveBrakingState } from '../src';
import { errorOf, expectClose, read, trajectory, useBackend } from './helpers';
import { copyParams, problem, problemGradient, refSgdmBraking, seededUniform, type Params } from './reference';

const lr = 0.05;
const sgdmAb = (o: Partial<Parameters<typeof adaptiveBraking>[0]> = {}) =>
  chain(adaptiveBraking({ momentum: 0.9, ...o }), scaleByLearningRate(lr));

/** The float64 trajectory of the reference optimizer on the test problem. */
function refTrajectory(o: Parameters<typeof refSgdmBraking>[0], steps: number): Params[] {
  const opt = refSgdmBraking(o);
  const w = copyParams(problem.w0);
  return Array.from({ length: steps }, () => (opt.step(w, problemGradient(w)), copyParams(w)));
}

/** One AB update from velocity `v` with gradient `g` (scalar-free shapes from the arrays). */
function oneUpdate(options: Parameters<typeof adaptiveBraking>[0], v: Record<string, number[]>, g: Record<string, number[]>) {
  return tf.tidy(() => {
    const ab = adaptiveBraking(options);
    const params = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, tf.zeros([x.length])]));
    const state = ab.init(params);
    state.velocity = Object.fromEntries(Object.entries(v).map(([k, x]) => [k, tf.tensor1d(x)]));
    const [, next] = ab.update(
      Object.fromEntries(Object.entries(g).map(([k, x]) => [k, tf.tensor1d(x)])),
      state,
      params,
      { step: 1 },
    );
    return { scale: read(next.scale), velocity: read(next.velocity) };
  });
}

describe('adaptiveBraking transform', () => {
  useBackend('cpu');

  describe('reduces to SGDM (docs/techniques.md §4.5 items 1, 2)', () => {
    it('rho = 0 gives the same weights as core momentum(), bit for bit, step for step', () => {
      const plain = trajectory(chain(momentum({ momentum: 0.9 }), scaleByLearningRate(lr)), 40);
      const braked = trajectory(sgdmAb({ rho: 0 }), 40);
      expect(braked).to.deep.equal(plain);
    });

    it('rho = 0 with weight decay equals addDecayedWeights + momentum(), bit for bit', () => {
      const plain = trajectory(chain(addDecayedWeights(0.01), momentum({ momentum: 0.9 }), scaleByLearningRate(lr)), 30);
      const braked = trajectory(sgdmAb({ rho: 0, weightDecay: 0.01 }), 30);
      expect(braked).to.deep.equal(plain);
    });

    it('rho = 0 follows the float64 SGDM reference', () => {
      const tfRun = trajectory(sgdmAb({ rho: 0 }), 40);
      const ref = refTrajectory({ lr, momentum: 0.9, rho: 0 }, 40);
      tfRun.forEach((w, t) => expectClose(w, ref[t], 2e-5, `step ${t}`));
    });
  });

  describe('follows the float64 reference with braking on', () => {
    for (const granularity of ['tensor', 'global'] as const) {
      for (const rho of [0.5, 2]) {
        it(`granularity '${granularity}', rho ${rho}`, () => {
          const tfRun = trajectory(sgdmAb({ rho, granularity }), 40);
          const ref = refTrajectory({ lr, momentum: 0.9, rho, granularity }, 40);
          tfRun.forEach((w, t) => expectClose(w, ref[t], 1e-4, `step ${t}`));
          // and braking changed the path (the test would pass vacuously otherwise)
          const plain = refTrajectory({ lr, momentum: 0.9, rho: 0 }, 40);
          expect(Math.abs(ref[39].w1[0] - plain[39].w1[0])).to.be.greaterThan(1e-3);
        });
      }
    }

    for (const applyToWeightDecay of [true, false]) {
      it(`weight decay with applyToWeightDecay ${applyToWeightDecay}`, () => {
        const tfRun = trajectory(sgdmAb({ rho: 2, weightDecay: 0.1, applyToWeightDecay }), 30);
        const ref = refTrajectory({ lr, momentum: 0.9, rho: 2, weightDecay: 0.1, applyToWeightDecay }, 30);
        tfRun.forEach((w, t) => expectClose(w, ref[t], 1e-4, `step ${t}`));
      });
    }

    it('applyToWeightDecay makes a difference (both settings are exercised)', () => {
      const a = refTrajectory({ lr, momentum: 0.9, rho: 2, weightDecay: 0.1, applyToWeightDecay: true }, 30);
      const b = refTrajectory({ lr, momentum: 0.9, rho: 2, weightDecay: 0.1, applyToWeightDecay: false }, 30);
      expect(Math.abs(a[29].w2[1] - b[29].w2[1])).to.be.greaterThan(1e-3);
    });
  });

  describe('the scale alpha = 1 - rho cos(g, v) (docs/techniques.md §4.5 items 3, 4)', () => {
    const v = { a: [1, -2, 0.5, 3], b: [0.2, 0.1] };
    for (const rho of [0.5, 1, 2]) {
      it(`rho ${rho}: aligned -> 1 - rho, opposite -> 1 + rho, orthogonal -> 1`, () => {
        const aligned = oneUpdate({ momentum: 0.9, rho }, v, { a: v.a.map((x) => 3 * x), b: v.b.map((x) => 0.5 * x) });
        const opposite = oneUpdate({ momentum: 0.9, rho }, v, { a: v.a.map((x) => -2 * x), b: v.b.map((x) => -x) });
        const orthogonal = oneUpdate({ momentum: 0.9, rho }, v, { a: [2, 1, 0, 0], b: [-0.1, 0.2] });
        for (const k of ['a', 'b']) {
          expect(aligned.scale[k][0]).to.be.closeTo(1 - rho, 1e-6);
          expect(opposite.scale[k][0]).to.be.closeTo(1 + rho, 1e-6);
          expect(orthogonal.scale[k][0]).to.be.closeTo(1, 1e-6);
        }
        // the velocity uses the scale: v' = m v + alpha g
        aligned.velocity.a.forEach((x, i) => expect(x).to.be.closeTo(0.9 * v.a[i] + (1 - rho) * 3 * v.a[i], 1e-5));
      });
    }

    it('lies in [1 - rho, 1 + rho] and equals 1 - rho cos for random g, v (float64 cosine)', () => {
      const rand = seededUniform(7);
      for (let trial = 0; trial < 40; trial++) {
        const n = 1 + (trial % 9);
        const g = Array.from({ length: n }, rand);
        const v = Array.from({ length: n }, rand);
        const rho = 2 * Math.abs(rand());
        const dot = g.reduce((s, x, i) => s + x * v[i], 0);
        const cos = dot / Math.sqrt(g.reduce((s, x) => s + x * x, 0) * v.reduce((s, x) => s + x * x, 0));
        const alpha = oneUpdate({ momentum: 0.5, rho }, { p: v }, { p: g }).scale.p[0];
        expect(alpha).to.be.within(1 - rho - 1e-6, 1 + rho + 1e-6);
        expect(alpha).to.be.closeTo(1 - rho * cos, 1e-5);
      }
    });

    it('first step (v = 0): scale exactly 1 and v_1 = g exactly', () => {
      const g = { a: [0.3, -1.7, 2.5, 1e-3] };
      const out = oneUpdate({ momentum: 0.9, rho: 2 }, { a: [0, 0, 0, 0] }, g);
      expect(out.scale.a).to.deep.equal([1]);
      expect(out.velocity.a).to.deep.equal(Array.from(Float32Array.from(g.a)));
    });

    it('zero or tiny gradients and velocities give scale 1 and no NaN', () => {
      const cases: Array<[number[], number[]]> = [
        [[0, 0, 0], [1, 2, 3]], // zero gradient
        [[1, 2, 3], [0, 0, 0]], // zero velocity
        [[0, 0, 0], [0, 0, 0]],
        [[1e-30, -1e-30, 1e-30], [1e-30, 1e-30, 1e-30]], // squares underflow float32
      ];
      for (const granularity of ['tensor', 'global'] as const) {
        for (const [g, v] of cases) {
          const out = oneUpdate({ momentum: 0.9, rho: 2, granularity }, { p: v }, { p: g });
          expect(out.scale.p[0], `g=${g} v=${v}`).to.equal(1);
          expect(out.velocity.p.every(Number.isFinite)).to.equal(true);
        }
      }
    });
  });

  describe('granularity (docs/techniques.md §4.5 item 5)', () => {
    const v = { a: [1, 2, -1], b: [0.5, -0.5] };
    const g1 = { a: [1, 2, -1], b: [1, 1] };
    const g2 = { a: [-3, 0.1, 2], b: [1, 1] }; // only tensor a's gradient changes

    it("'tensor': changing tensor a's gradient leaves b's scale and velocity bit-identical", () => {
      const x = oneUpdate({ momentum: 0.9, rho: 2 }, v, g1);
      const y = oneUpdate({ momentum: 0.9, rho: 2 }, v, g2);
      expect(x.scale.a[0]).to.not.equal(y.scale.a[0]);
      expect(y.scale.b).to.deep.equal(x.scale.b);
      expect(y.velocity.b).to.deep.equal(x.velocity.b);
    });

    it("'global': one scale for all tensors, so b's scale does change", () => {
      const x = oneUpdate({ momentum: 0.9, rho: 2, granularity: 'global' }, v, g1);
      const y = oneUpdate({ momentum: 0.9, rho: 2, granularity: 'global' }, v, g2);
      expect(x.scale.a).to.deep.equal(x.scale.b);
      expect(y.scale.b[0]).to.not.be.closeTo(x.scale.b[0], 1e-3);
    });
  });

  describe('composition and state', () => {
    it('works in any chain: addDecayedWeights + AB equals AB with its own weightDecay, bit for bit', () => {
      const outer = trajectory(chain(addDecayedWeights(0.05), adaptiveBraking({ momentum: 0.9 }), scaleByLearningRate(lr)), 25);
      const inner = trajectory(sgdmAb({ weightDecay: 0.05 }), 25);
      expect(outer).to.deep.equal(inner);
    });

    it('works after clipByGlobalNorm (clipped gradients drive the cosine)', () => {
      const clipped = trajectory(chain(clipByGlobalNorm(0.5), adaptiveBraking({ momentum: 0.9 }), scaleByLearningRate(lr)), 20);
      const opt = refSgdmBraking({ lr, momentum: 0.9, rho: DEFAULT_RHO }); // the transform above runs with the default
      const w = copyParams(problem.w0);
      for (let t = 0; t < 20; t++) {
        const g = problemGradient(w);
        const norm = Math.sqrt(Object.values(g).flat().reduce((s, x) => s + x * x, 0));
        const f = norm > 0.5 ? 0.5 / norm : 1;
        opt.step(w, Object.fromEntries(Object.entries(g).map(([k, x]) => [k, x.map((y) => y * f)])));
        expectClose(clipped[t], w, 1e-4, `step ${t}`);
      }
    });

    it('the state is named and inspectable: count, velocity, scale per parameter', () => {
      const ab = adaptiveBraking({ momentum: 0.9 });
      tf.tidy(() => {
        const params = { w: tf.zeros([2]), b: tf.zeros([]) };
        const s0 = ab.init(params);
        expect(s0.count).to.equal(0);
        expect(Object.keys(s0.velocity)).to.deep.equal(['w', 'b']);
        expect(read(s0.scale)).to.deep.equal({ w: [1], b: [1] });
        const [, s1] = ab.update({ w: tf.tensor1d([1, 2]), b: tf.scalar(3) }, s0, params, { step: 0 });
        expect(s1.count).to.equal(1);
        expect(read(s1.velocity)).to.deep.equal({ w: [1, 2], b: [3] });
      });
    });

    it('state round-trips through serializeState/deserializeState: the resumed run is bit-identical', () => {
      const t = sgdmAb({ rho: 2 });
      const run = (steps: number, resumeAt?: number) => {
        const params = Object.fromEntries(Object.entries(problem.w0).map(([k, v]) => [k, tf.variable(tf.tensor(v, problem.shapes[k]))]));
        let state: TransformState = tf.tidy(() => t.init(params));
        for (let s = 0; s < steps; s++) {
          if (s === resumeAt) {
            const json = JSON.parse(JSON.stringify(serializeState(state)));
            const loaded = deserializeState(json);
            checkStateMatches(state, loaded);
            tf.dispose(stateTensors(state));
            state = loaded;
          }
          const grads = tf.tidy(() => Object.fromEntries(Object.entries(problemGradient(read(params))).map(([k, v]) => [k, tf.tensor(v, problem.shapes[k])])));
          state = transformStep(t, params, grads, state, { step: s });
          tf.dispose(Object.values(grads));
        }
        const w = read(params);
        tf.dispose([...stateTensors(state), ...Object.values(params)]);
        return w;
      };
      expect(run(20, 10)).to.deep.equal(run(20));
    });

    it('no tensor leaks over many steps', () => {
      const t = sgdmAb({ rho: 2, granularity: 'global', weightDecay: 0.01, applyToWeightDecay: false });
      const params = { p: tf.variable(tf.randomNormal([5, 3], 0, 1, 'float32', 1)), q: tf.variable(tf.ones([4])) };
      let state: TransformState = tf.tidy(() => t.init(params));
      const step = (s: number) => {
        const grads: NamedTensors = tf.tidy(() => ({ p: tf.randomNormal([5, 3], 0, 1, 'float32', s), q: tf.randomNormal([4], 0, 1, 'float32', s + 99) }));
        state = transformStep(t, params, grads, state, { step: s });
        tf.dispose(Object.values(grads));
      };
      step(0);
      const before = tf.memory().numTensors;
      for (let s = 1; s < 60; s++) step(s);
      expect(tf.memory().numTensors).to.equal(before);
      tf.dispose([...stateTensors(state), ...Object.values(params)]);
    });

    it('a missing or mis-shaped velocity fails with a clear error', () => {
      const ab = adaptiveBraking({ momentum: 0.9 });
      tf.tidy(() => {
        const s = ab.init({ w: tf.zeros([2]) });
        expect(errorOf(() => ab.update({ v: tf.zeros([2]) }, s, {}, { step: 0 })).message).to.match(/no velocity for parameter 'v' \(have: w\)/);
        expect(errorOf(() => ab.update({ w: tf.zeros([3]) }, s, {}, { step: 0 })).message).to.match(/velocity 'w' has shape \[2\] but its update has shape \[3\]/);
      });
    });
  });

  describe('defaults (chosen by the delay study, README)', () => {
    it('rho 1.5 per tensor: the default trajectory is that of rho 1.5, granularity tensor', () => {
      expect(DEFAULT_RHO).to.equal(1.5);
      expect(adaptiveBraking({ momentum: 0.9 }).hyperparams).to.include({ rho: 1.5, granularity: 'tensor' });
      expect(withAdaptiveBraking([momentum({ momentum: 0.9 })])[0].hyperparams).to.include({ rho: 1.5, granularity: 'tensor' });
      const byDefault = trajectory(sgdmAb(), 30);
      expect(byDefault).to.deep.equal(trajectory(sgdmAb({ rho: 1.5, granularity: 'tensor' }), 30));
      expect(byDefault).to.not.deep.equal(trajectory(sgdmAb({ rho: 2 }), 30));
    });
  });

  describe('bad options fail with the option named', () => {
    const cases: Array<[string, unknown, RegExp]> = [
      ['rho < 0', { momentum: 0.9, rho: -0.1 }, /option 'rho' must be in \[0, 2\] \(got -0.1\)/],
      ['rho > 2', { momentum: 0.9, rho: 2.5 }, /option 'rho' must be in \[0, 2\] \(got 2.5\)/],
      ['rho NaN', { momentum: 0.9, rho: NaN }, /option 'rho'/],
      ['no momentum', {}, /option 'momentum' is required/],
      ['momentum 1', { momentum: 1 }, /option 'momentum' must be in \[0, 1\)/],
      ['granularity', { momentum: 0.9, granularity: 'layer' }, /option 'granularity' must be 'tensor' or 'global'/],
      ['eps', { momentum: 0.9, eps: 0 }, /option 'eps' must be > 0/],
      ['weightDecay', { momentum: 0.9, weightDecay: -1 }, /option 'weightDecay' must be >= 0/],
      ['misspelt', { momentum: 0.9, weight_decay: 0.1 }, /unknown option\(s\) 'weight_decay'/],
    ];
    for (const [what, options, message] of cases) {
      it(what, () => {
        const err = errorOf(() => adaptiveBraking(options as Parameters<typeof adaptiveBraking>[0]));
        expect(err.code).to.equal('TAPFIT_E_CONFIG');
        expect(err.message).to.match(/^adaptiveBraking: /);
        expect(err.message).to.match(message);
      });
    }
  });
});

export type { AdaptiveBrakingState };
