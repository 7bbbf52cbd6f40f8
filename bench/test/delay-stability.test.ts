import { expect } from 'chai';
import { converges, curvatures, largestStableRate, spectralRadius, startState, step, type DelayMethod } from '../src/lib/delay-stability';

const m = 0.9;

/** Weights over `steps` steps of a method on a single curvature q (lr folded in), from w0 = 1. */
function trajectory(method: DelayMethod, q: number, D: number, steps: number): number[] {
  const s = startState(Float64Array.of(1), D);
  const out: number[] = [];
  for (let t = 0; t < steps; t++) {
    step(method, s, Float64Array.of(q), D, m);
    out.push(s.w[0]);
  }
  return out;
}

describe('delay stability analysis (float64)', () => {
  it('momentum without delay: the largest stable lr·h is the closed form 2 (1 + m)', () => {
    for (const mom of [0, 0.5, 0.9]) {
      const q = largestStableRate({ kind: 'momentum' }, 0, { momentum: mom, tolerance: 1e-6 });
      expect(q / (2 * (1 + mom))).to.be.within(1 - 1e-5, 1);
    }
  });

  it('simulation and spectral radius agree on the threshold of a linear method', () => {
    for (const [method, D] of [[{ kind: 'momentum' }, 8], [{ kind: 'sc' }, 4], [{ kind: 'lwp', form: 'velocity' }, 4]] as [DelayMethod, number][]) {
      const q = largestStableRate(method, D, { momentum: m });
      expect(spectralRadius(method, 0.97 * q, D, m)).to.be.below(1);
      expect(spectralRadius(method, 1.03 * q, D, m)).to.be.above(1);
      expect(converges(method, Float64Array.of(0.97 * q), D, m, 100_000)).to.equal(true);
      expect(converges(method, Float64Array.of(1.03 * q), D, m, 100_000)).to.equal(false);
    }
  });

  it('the delay model: the gradient applied at step t was computed on the weights of step t - D (the initial ones before)', () => {
    // D = 2, plain SGD (m = 0): w_{t+1} = w_t - q w_{max(0, t - 2)}.
    const q = 0.1;
    const s = startState(Float64Array.of(1), 2);
    const w: number[] = [1];
    for (let t = 0; t < 5; t++) {
      step({ kind: 'momentum' }, s, Float64Array.of(q), 2, 0);
      w.push(s.w[0]);
    }
    for (let t = 0; t < 5; t++) expect(w[t + 1]).to.be.closeTo(w[t] - q * w[Math.max(0, t - 2)], 1e-15);
  });

  it('neutral settings reduce to momentum: AB with rho 0, SC and LWP at D = 0', () => {
    const ref = trajectory({ kind: 'momentum' }, 0.3, 0, 200);
    expect(trajectory({ kind: 'ab', rho: 0 }, 0.3, 0, 200)).to.deep.equal(ref);
    expect(trajectory({ kind: 'sc' }, 0.3, 0, 200)).to.deep.equal(ref);
    expect(trajectory({ kind: 'lwp', form: 'delta' }, 0.3, 0, 200)).to.deep.equal(ref);
    expect(trajectory({ kind: 'ab', rho: 0 }, 0.01, 8, 300)).to.deep.equal(trajectory({ kind: 'momentum' }, 0.01, 8, 300));
  });

  it('SC with D = 1 is Nesterov momentum on the once-delayed gradient', () => {
    const q = 0.05;
    let w = 1;
    let v = 0;
    let prev = 1; // the forward weights of the step before (the initial ones at first)
    const nesterov: number[] = [];
    for (let t = 0; t < 100; t++) {
      const g = q * prev;
      prev = w;
      v = m * v + g;
      w -= g + m * v;
      nesterov.push(w);
    }
    trajectory({ kind: 'sc' }, q, 1, 100).forEach((x, i) => expect(x).to.be.closeTo(nesterov[i], 1e-12));
  });

  it('both LWP forms give the same trajectory on plain momentum', () => {
    const a = trajectory({ kind: 'lwp', form: 'velocity' }, 0.02, 6, 400);
    const b = trajectory({ kind: 'lwp', form: 'delta' }, 0.02, 6, 400);
    a.forEach((x, i) => expect(x).to.be.closeTo(b[i], 1e-12 * (1 + Math.abs(x))));
  });

  it('delay shrinks the stable range of momentum, and each remedy widens it at D = 8', () => {
    const at = (method: DelayMethod, D: number) => largestStableRate(method, D, { momentum: m });
    const base = at({ kind: 'momentum' }, 8);
    expect(base).to.be.below(at({ kind: 'momentum' }, 0) / 10);
    expect(at({ kind: 'sc' }, 8)).to.be.above(base);
    expect(at({ kind: 'lwp', form: 'velocity' }, 8)).to.be.above(base);
    // (on one curvature AB's cosine is always ±1, and rho >= 1 stalls an aligned gradient: the N-dimensional case)
    expect(largestStableRate({ kind: 'ab', rho: 1 }, 8, { momentum: m, dims: 8, spread: 0.01 })).to.be.above(base);
  });

  it('the N-dimensional profile spans the given spread; AB there uses one cosine over all directions', () => {
    const q = curvatures(2, 5, 0.01);
    expect(q[0]).to.equal(2);
    expect(q[4]).to.be.closeTo(0.02, 1e-12);
    // rho = 0: every direction is an independent momentum run
    const ab = startState(new Float64Array(5).fill(1), 3);
    const mo = startState(new Float64Array(5).fill(1), 3);
    for (let t = 0; t < 50; t++) {
      step({ kind: 'ab', rho: 0 }, ab, q, 3, m);
      step({ kind: 'momentum' }, mo, q, 3, m);
    }
    expect(Array.from(ab.w)).to.deep.equal(Array.from(mo.w));
  });

  it('AB per tensor: one tensor is the single cosine, one tensor per direction is independent 1-D runs', () => {
    const q = curvatures(0.05, 6, 0.01);
    const run = (method: DelayMethod, w0: Float64Array) => {
      const s = startState(w0, 4);
      for (let t = 0; t < 300; t++) step(method, s, q, 4, m);
      return Array.from(s.w);
    };
    const w0 = Float64Array.from([1, -0.5, 0.8, 0.3, -1, 0.6]);
    expect(run({ kind: 'ab', rho: 1.5, tensors: 1 }, w0)).to.deep.equal(run({ kind: 'ab', rho: 1.5 }, w0));
    const perDirection = run({ kind: 'ab', rho: 1.5, tensors: 6 }, w0);
    q.forEach((qi, i) => {
      const s = startState(Float64Array.of(w0[i]), 4);
      for (let t = 0; t < 300; t++) step({ kind: 'ab', rho: 1.5 }, s, Float64Array.of(qi), 4, m);
      expect(perDirection[i]).to.equal(s.w[0]);
    });
    // two tensors: direction i belongs to tensor i mod 2, so changing direction 1 leaves directions 0, 2, 4 alone
    const a = run({ kind: 'ab', rho: 1.5, tensors: 2 }, w0);
    const b = run({ kind: 'ab', rho: 1.5, tensors: 2 }, Float64Array.from([1, 0.9, 0.8, 0.3, -1, 0.6]));
    expect([a[0], a[2], a[4]]).to.deep.equal([b[0], b[2], b[4]]);
    expect(a[1]).to.not.equal(b[1]);
  });
});
