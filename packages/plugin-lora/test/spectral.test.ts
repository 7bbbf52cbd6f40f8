import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { analyzeUpdate, applyLora, explainedRank, formatAnalysis, rank90, singularValues } from '../src';
import { cnn, mlp, perturbAdapters, thrown, useCpu } from './helpers';

/** Deterministic standard normals (Box-Muller over a small LCG), so the test needs no tf RNG. */
function normals(n: number, seed: number): number[] {
  let s = seed >>> 0;
  const u = () => ((s = (1664525 * s + 1013904223) >>> 0) + 0.5) / 2 ** 32;
  return Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

function identity(n: number): number[] {
  return Array.from({ length: n * n }, (_, i) => (i % (n + 1) === 0 ? 1 : 0));
}

/** U diag(s) V^T from random factors has rank <= s.length. */
function lowRank(rows: number, cols: number, r: number, seed: number): number[] {
  const U = normals(rows * r, seed);
  const V = normals(cols * r, seed + 1);
  return Array.from({ length: rows * cols }, (_, k) => {
    const [i, j] = [Math.floor(k / cols), k % cols];
    let v = 0;
    for (let t = 0; t < r; t++) v += U[i * r + t] * V[j * r + t];
    return v;
  });
}

describe('spectral analysis', () => {
  useCpu();

  it('singular values of known matrices', () => {
    expect(singularValues([3, 0, 0, -4], 2, 2).map((v) => +v.toFixed(12))).to.deep.equal([4, 3]);
    // [[1,1],[0,0]] (rank 1): sigma = sqrt(2), 0; wide and tall shapes both work.
    const s = singularValues([1, 1, 0, 0], 2, 2);
    expect(s[0]).to.be.closeTo(Math.SQRT2, 1e-12);
    expect(s[1]).to.be.closeTo(0, 1e-12);
    expect(singularValues([1, 2, 3, 4, 5, 6], 2, 3)).to.have.length(2);
    expect(singularValues([1, 2, 3, 4, 5, 6], 3, 2)).to.have.length(2);
    // Sum of squares = squared Frobenius norm.
    const g = normals(7 * 5, 3);
    const sv = singularValues(g, 7, 5);
    expect(sv.reduce((a, v) => a + v * v, 0)).to.be.closeTo(g.reduce((a, v) => a + v * v, 0), 1e-9);
  });

  it('rank90: identity n -> ceil(0.9 n)', () => {
    for (const n of [1, 7, 10, 64]) expect(rank90(singularValues(identity(n), n, n))).to.equal(Math.ceil(0.9 * n));
  });

  it('rank90: rank-1 -> 1, exactly rank r -> <= r, zero -> 0', () => {
    expect(rank90(singularValues(lowRank(30, 20, 1, 1), 30, 20))).to.equal(1);
    for (const r of [2, 5, 8]) expect(rank90(singularValues(lowRank(40, 32, r, r), 40, 32))).to.be.at.most(r).and.at.least(1);
    expect(rank90([0, 0, 0])).to.equal(0);
  });

  it('rank90: iid Gaussian 64x64 -> about 0.51 n (33 +- 3)', () => {
    for (const seed of [1, 2, 3]) expect(rank90(singularValues(normals(64 * 64, seed), 64, 64))).to.be.within(30, 36);
  });

  it('explainedRank follows its definition on hand-made spectra', () => {
    // squares 16, 9, 4, 1 (total 30): cumulative 16/30=.53, 25/30=.83, 29/30=.97
    expect([0.5, 0.6, 0.9, 0.97, 1].map((f) => explainedRank([3, 4, 1, 2], f))).to.deep.equal([1, 2, 3, 4, 4]);
    expect(() => explainedRank([1], 0)).to.throw(/fraction must be in \(0, 1\]/);
  });

  it('analyzeUpdate: a LoRA update has rank90(dW) <= r; W_pre and W_ft reported; table and JSON', () => {
    const base = mlp();
    const r = 2;
    const lora = applyLora(base, { targets: 'all-dense', rank: r, seed: 1 });
    perturbAdapters(lora.model, 4, 1);
    const a = analyzeUpdate(base, lora.model);
    expect(a.layers.map((l) => [l.layer, l.shape])).to.deep.equal([
      ['fc1', [6, 12]],
      ['fc2', [12, 10]],
      ['head', [10, 3]],
    ]);
    for (const l of a.layers) {
      expect(l.delta.rank).to.be.at.most(r).and.at.least(1);
      expect(l.delta.singularValues.slice(r).every((v) => v < 1e-5 * l.delta.singularValues[0])).to.equal(true);
      expect(l.pre.rank).to.equal(rank90(l.pre.singularValues));
      expect(l.relativeUpdate).to.be.closeTo(l.delta.norm / l.pre.norm, 1e-12);
    }
    const table = formatAnalysis(a);
    expect(table.split('\n')[0]).to.match(/layer +matrix +max rank +rank90\(W_pre\) +rank90\(W_ft\) +rank90\(dW\)/);
    expect(table).to.match(/fc1 +6x12 +6 /);
    expect(JSON.parse(JSON.stringify(a)).layers[0].delta.singularValues).to.have.length(6);
    lora.dispose();
    base.dispose();
  });

  it('analyzeUpdate: a full-rank update of a conv kernel reshaped to kh*kw*in x out', () => {
    const base = cnn();
    const tuned = cnn();
    const k = tuned.getLayer('conv1').weights[0];
    const noise = tf.add(k.read(), tf.randomNormal(k.shape as number[], 0, 1, 'float32', 3));
    k.write(noise);
    noise.dispose();
    const n = tf.memory().numTensors;
    const a = analyzeUpdate(base, tuned);
    expect(tf.memory().numTensors).to.equal(n);
    const conv1 = a.layers.find((l) => l.layer === 'conv1')!;
    expect(conv1.shape).to.deep.equal([3 * 3 * 4, 6]);
    expect(conv1.delta.rank).to.be.at.least(4); // iid noise: high rank (6 columns)
    expect(a.layers.find((l) => l.layer === 'conv2')!.delta.rank).to.equal(0); // untouched
    base.dispose();
    tuned.dispose();
  });

  it('analyzeUpdate refuses a fraction outside (0, 1] by its own name, and leaks nothing', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'fc1', rank: 2, seed: 1 });
    analyzeUpdate(base, lora.model); // warm-up: tfjs caches a few tensors on first use
    for (const fraction of [90, 0, -0.5, Number.NaN]) {
      const n = tf.memory().numTensors;
      const err = thrown(() => analyzeUpdate(base, lora.model, { fraction }));
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal(ErrorCodes.CONFIG);
      expect(err.message).to.match(/^lora: analyzeUpdate: option 'fraction' must be in \(0, 1\] \(got .*\); use 0\.9/);
      expect(tf.memory().numTensors, `tensors after fraction ${fraction}`).to.equal(n);
    }
    lora.dispose();
    base.dispose();
  });
  it('analyzeUpdate refuses NaN or Inf weights, naming the layer and model, instead of reporting a rank', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'all-dense', rank: 2, seed: 1 });
    perturbAdapters(lora.model, 4, 1);
    analyzeUpdate(base, lora.model); // warm-up: tfjs caches a few tensors on first use
    const b = lora.model.getLayer('fc2').weights.find((w) => /lora_B/.test(w.originalName))!;
    const saved = tf.clone(b.read());
    for (const bad of [Number.NaN, Infinity]) {
      const fill = tf.fill(b.shape as number[], bad);
      b.write(fill);
      fill.dispose();
      const n = tf.memory().numTensors;
      const err = thrown(() => analyzeUpdate(base, lora.model));
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal(ErrorCodes.STATE);
      expect(err.message).to.match(/^lora: analyzeUpdate: the kernel is not finite in layer fc2 of the tuned model; its weights hold NaN or Inf/);
      expect(tf.memory().numTensors, `tensors after ${bad}`).to.equal(n);
    }
    b.write(saved);
    saved.dispose();
    // The base model is named too.
    const k = base.getLayer('head').weights[0];
    const fill = tf.fill(k.shape as number[], Number.NaN);
    k.write(fill);
    fill.dispose();
    expect(thrown(() => analyzeUpdate(base, lora.model)).message).to.match(/not finite in layer head of the base model/);
    lora.dispose();
    base.dispose();
  });
});
