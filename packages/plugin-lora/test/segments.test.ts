import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { forwardSegments, fromLayersModel, modelVariables, readParam, type Segment, type SegmentContext, segmentModel, SilentLogger, type TrainableModel, TapfitError } from '@tapfit/core';
import { applyLoraToSegments, formatPlan, type LoraPlan, LoraSegmentModel, segmentCatalog } from '../src';
import { array2d, maxAbsDiff, mlp, sameValues, thrown, useCpu } from './helpers';
import { loraDense, loraDenseGrads, maxAbs } from './reference';
import { denseSegment, denseSegments, disposeModel, evalCtx, seeded, trainCtx } from './segment-helpers';

const run = (model: TrainableModel, x: tf.Tensor, ctx: SegmentContext = evalCtx) => tf.tidy(() => forwardSegments(model, x, ctx));
const adapted = (p: LoraPlan) => p.adapted.map((l) => l.path);

/** Give every A and B non-zero values, deterministically. */
function perturb(lora: LoraSegmentModel, seed = 3, scale = 0.5): void {
  let s = seed;
  for (const a of lora.adapters) {
    for (const v of [a.A, a.B]) {
      const t = tf.randomNormal(v.shape, 0, scale, 'float32', s++);
      v.assign(t);
      t.dispose();
    }
  }
}

/** |y_m - y_u| <= 1e-5 (1 + |y_u|) elementwise (docs/techniques.md §1.6 item 2). */
function agree(merged: tf.Tensor, unmerged: tf.Tensor): boolean {
  return tf.tidy(() => tf.all(tf.lessEqual(tf.abs(tf.sub(merged, unmerged)), tf.mul(1e-5, tf.add(1, tf.abs(unmerged))))).dataSync()[0] === 1);
}

describe('applyLoraToSegments: wrapping', () => {
  useCpu();

  it('starts equal to the base model bit for bit (B = 0), in eval and train mode', () => {
    const base = denseSegments();
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 11);
    const before = [run(base, x), run(base, x, trainCtx)];
    const lora = applyLoraToSegments(base, { targets: 'all-dense', rank: 2, seed: 1 });
    expect(lora.targets).to.deep.equal(['fc1/param0', 'head/param0']);
    const after = [run(lora.model, x), run(lora.model, x, trainCtx)];
    expect(sameValues(after[0], before[0])).to.equal(true);
    expect(sameValues(after[1], before[1])).to.equal(true);
    tf.dispose([x, ...before, ...after]);
    lora.dispose();
    disposeModel(base);
  });

  it('creates A [in, r] ~ U(-1/sqrt(in), 1/sqrt(in)) (seeded) and B [r, out] = 0; r·(in + out) trainable parameters per target', () => {
    const base = denseSegments(1, { inputs: 16, hidden: 12, outputs: 3 });
    const lora = applyLoraToSegments(base, { targets: 'fc1', rank: 3, seed: 5 });
    const [{ A, B, W }] = lora.adapters;
    expect(A.shape).to.deep.equal([16, 3]);
    expect(B.shape).to.deep.equal([3, 12]);
    const a = Array.from(A.dataSync());
    expect(Math.max(...a.map(Math.abs))).to.be.at.most(1 / Math.sqrt(16));
    expect(Math.max(...a.map(Math.abs))).to.be.above(0.5 / Math.sqrt(16)); // spread over the interval, not a tiny init
    expect(Array.from(B.dataSync()).every((v) => v === 0)).to.equal(true);
    expect(W.trainable).to.equal(false);
    expect(lora.trainableParams).to.equal(3 * (16 + 12));
    expect(lora.plan.trainableParams).to.equal(3 * (16 + 12));
    // The same seed gives the same A; another seed another one.
    const base2 = denseSegments(1, { inputs: 16, hidden: 12, outputs: 3 });
    const same = applyLoraToSegments(base2, { targets: 'fc1', rank: 3, seed: 5 });
    expect(sameValues(same.adapters[0].A, A)).to.equal(true);
    same.dispose();
    const other = applyLoraToSegments(base2, { targets: 'fc1', rank: 3, seed: 6 });
    expect(maxAbsDiff(other.adapters[0].A, A)).to.be.above(0);
    other.dispose();
    const gauss = applyLoraToSegments(base2, { targets: 'fc1', rank: 4, init: 'gaussian', seed: 5 });
    const g = Array.from(gauss.adapters[0].A.dataSync());
    const std = Math.sqrt(g.reduce((s, v) => s + v * v, 0) / g.length);
    expect(std).to.be.within(0.25 * 0.7, 0.25 * 1.3); // N(0, (1/r)^2), 64 samples
    gauss.dispose();
    [base, base2].forEach(disposeModel);
    lora.dispose();
  });

  it('forward equals the float64 reference x(W + s·A·B) + b, also with rsLoRA and through an outer weights resolver', () => {
    for (const rsLora of [false, true]) {
      const w = seeded([5, 4], 1);
      const b = seeded([4], 2, 0.1);
      const base = segmentModel([denseSegment('lin', w, b)]);
      const lora = applyLoraToSegments(base, { targets: 'lin', rank: 2, alpha: 3, rsLora, seed: 4 });
      perturb(lora);
      const s = rsLora ? 3 / Math.sqrt(2) : 3 / 2;
      expect(lora.scale).to.equal(s);
      const { A, B } = lora.adapters[0];
      const x = tf.randomNormal([3, 5], 0, 1, 'float32', 9);
      const y = run(lora.model, x);
      const want = loraDense(array2d(x), array2d(w), Array.from(b.dataSync()), array2d(A), array2d(B), s);
      expect(maxAbs(array2d(y), want)).to.be.below(1e-5);
      // An outer wrapper's resolver (here W -> 2W) is applied first; LoRA adds to its result.
      const outer = { ...evalCtx, weights: (v: tf.Variable) => (v === w ? tf.mul(w, 2) : v) };
      const y2 = run(lora.model, x, outer);
      const want2 = loraDense(array2d(x), array2d(w).map((r) => r.map((v) => 2 * v)), Array.from(b.dataSync()), array2d(A), array2d(B), s);
      expect(maxAbs(array2d(y2), want2)).to.be.below(1e-5);
      tf.dispose([x, y, y2]);
      lora.dispose();
      disposeModel(base);
    }
  });

  it('gradients: only A and B get them, equal to the analytic dA = s xᵀ(G Bᵀ), dB = s (xA)ᵀ G', () => {
    const w = seeded([5, 4], 1);
    const b = seeded([4], 2, 0.1);
    const base = segmentModel([denseSegment('lin', w, b)]);
    const lora = applyLoraToSegments(base, { targets: 'lin', rank: 2, seed: 4 });
    perturb(lora);
    const { A, B } = lora.adapters[0];
    const x = tf.randomNormal([3, 5], 0, 1, 'float32', 9);
    const G = tf.randomNormal([3, 4], 0, 1, 'float32', 10);
    // No var list: tfjs takes every trainable variable, so this also checks the flags.
    const { grads } = tf.variableGrads(() => tf.sum(tf.mul(forwardSegments(lora.model, x, trainCtx), G)) as tf.Scalar);
    expect(Object.keys(grads).sort()).to.deep.equal([A.name, B.name].sort());
    const ref = loraDenseGrads(array2d(x), array2d(A), array2d(B), array2d(G), lora.scale);
    expect(maxAbs(array2d(grads[A.name]), ref.dA)).to.be.below(1e-5);
    expect(maxAbs(array2d(grads[B.name]), ref.dB)).to.be.below(1e-5);
    tf.dispose([x, G, ...Object.values(grads)]);
    lora.dispose();
    disposeModel(base);
  });

  it('substitutes a weight shared by two segments in both, and wraps inverse() too', () => {
    const w = seeded([3, 3], 1);
    const b = seeded([3], 2, 0.1);
    const inverse: Segment['inverse'] = ([y], ctx) => [tf.sub(y, tf.sum(readParam(ctx, w), 0))];
    const tiedA: Segment = { ...denseSegment('a', w, b), inverse };
    const base = segmentModel([tiedA, denseSegment('b', w, b)]);
    const lora = applyLoraToSegments(base, { targets: 'a/param0', rank: 1, seed: 2 });
    perturb(lora);
    const [seg0, seg1] = lora.model.segments;
    expect(seg0.params).to.include(lora.adapters[0].A);
    expect(seg1.params).to.include(lora.adapters[0].B);
    const eff = tf.add(w, tf.mul(tf.matMul(lora.adapters[0].A, lora.adapters[0].B), lora.scale));
    const x = tf.randomNormal([2, 3], 0, 1, 'float32', 3);
    const y = run(lora.model, x);
    const want = tf.tidy(() => tf.add(tf.matMul(tf.add(tf.matMul(x, eff), b), eff), b));
    expect(maxAbsDiff(y, want)).to.be.below(1e-5);
    const back = tf.tidy(() => seg0.inverse!([x], evalCtx)[0]);
    expect(maxAbsDiff(back, tf.sub(x, tf.sum(eff, 0)))).to.be.below(1e-6);
    tf.dispose([eff, x, y, want, back]);
    lora.dispose();
    disposeModel(base);
  });

  it('a segment that reads a target without readParam fails its forward, naming the fix', () => {
    const w = seeded([3, 2], 1);
    const base = segmentModel([{ name: 'raw', params: [w], forward: ([x]) => [tf.matMul(x, w)] }]);
    const lora = applyLoraToSegments(base, { targets: 'raw', rank: 1, seed: 1 });
    const x = tf.ones([1, 3]);
    const err = thrown(() => run(lora.model, x));
    expect(err).to.be.instanceOf(TapfitError);
    expect(err.message).to.match(/segment 'raw' did not read raw\/param0 through readParam\(ctx, w\)/);
    tf.dispose(x);
    lora.dispose();
    disposeModel(base);
  });

  it('leaks no tensors over forward/backward passes, merge/unmerge, and apply/dispose', () => {
    const base = denseSegments();
    const x = tf.randomNormal([4, 4], 0, 1, 'float32', 1);
    const start = tf.memory().numTensors;
    const lora = applyLoraToSegments(base, { targets: 'all-dense', rank: 2, seed: 1 });
    perturb(lora);
    const step = () =>
      tf.tidy(() => {
        const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(forwardSegments(lora.model, x, trainCtx))) as tf.Scalar);
        tf.dispose([value, ...Object.values(grads)]);
      });
    step();
    lora.merge().unmerge();
    const warm = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) {
      step();
      lora.merge();
      run(lora.model, x).dispose();
      lora.unmerge();
    }
    expect(tf.memory().numTensors).to.equal(warm);
    lora.dispose();
    expect(tf.memory().numTensors).to.equal(start); // A and B freed
    tf.dispose(x);
    disposeModel(base);
  });
});

describe('applyLoraToSegments: target selection', () => {
  useCpu();
  let base: TrainableModel;
  before(() => {
    base = segmentModel([
      denseSegment('enc_q', tf.variable(tf.zeros([4, 6]), true, 'seg_test/q_w'), tf.variable(tf.zeros([6]), true, 'seg_test/q_b')),
      denseSegment('enc_v', tf.variable(tf.zeros([6, 6]), true, 'seg_test/v_w'), tf.variable(tf.zeros([6]), true, 'seg_test/v_b')),
      denseSegment('out', tf.variable(tf.zeros([6, 2]), true, 'seg_test/out_w'), tf.variable(tf.zeros([2]), true, 'seg_test/out_b')),
    ]);
  });
  after(() => disposeModel(base));
  const plan = (opts: Parameters<typeof applyLoraToSegments>[1]) => applyLoraToSegments(base, { ...opts, dryRun: true, logger: new SilentLogger() });

  it('lists every variable with a path, marking unsupported ones and the output head', () => {
    const entries = segmentCatalog(base);
    expect(entries.map((e) => e.path)).to.deep.equal(['enc_q/seg_test/q_w', 'enc_q/seg_test/q_b', 'enc_v/seg_test/v_w', 'enc_v/seg_test/v_b', 'out/seg_test/out_w', 'out/seg_test/out_b']);
    expect(entries.filter((e) => e.unsupported).map((e) => e.path)).to.deep.equal(['enc_q/seg_test/q_b', 'enc_v/seg_test/v_b', 'out/seg_test/out_b']);
    expect(entries.filter((e) => e.isHead).map((e) => e.segment)).to.deep.equal(['out', 'out']);
  });

  it('by variable name, path, segment name, suffix, RegExp and keyword', () => {
    expect(adapted(plan({ targets: 'seg_test/v_w', rank: 2 }))).to.deep.equal(['enc_v/seg_test/v_w']);
    expect(adapted(plan({ targets: 'enc_q/seg_test/q_w', rank: 2 }))).to.deep.equal(['enc_q/seg_test/q_w']);
    expect(adapted(plan({ targets: 'out', rank: 2 }))).to.deep.equal(['out/seg_test/out_w']); // its 1-D bias is skipped
    expect(adapted(plan({ targets: '*_w', rank: 2 }))).to.deep.equal(['enc_q/seg_test/q_w', 'enc_v/seg_test/v_w', 'out/seg_test/out_w']);
    expect(adapted(plan({ targets: /^enc_/g, rank: 2 }))).to.deep.equal(['enc_q/seg_test/q_w', 'enc_v/seg_test/v_w']); // /g ignored
    expect(adapted(plan({ targets: 'all-dense', rank: 2 }))).to.deep.equal(['enc_q/seg_test/q_w', 'enc_v/seg_test/v_w', 'out/seg_test/out_w']);
    expect(adapted(plan({ targets: 'all-linear', rank: 2 }))).to.deep.equal(['enc_q/seg_test/q_w', 'enc_v/seg_test/v_w']); // not the head
    expect(adapted(plan({ targets: 'all-dense', exclude: ['out', /enc_q/], rank: 2 }))).to.deep.equal(['enc_v/seg_test/v_w']);
    expect(adapted(plan({ targets: 'output', rank: 2 }))).to.deep.equal(['out/seg_test/out_w']);
  });

  it("'output' is the last segment with a 2-D weight: modulesToSave: 'output' trains all its variables, 'all-linear' adapts the rest", () => {
    const p = plan({ targets: 'all-linear', modulesToSave: 'output', rank: 2 });
    expect(adapted(p)).to.deep.equal(['enc_q/seg_test/q_w', 'enc_v/seg_test/v_w']);
    expect(p.saved.map((s) => s.path)).to.deep.equal(['out/seg_test/out_w', 'out/seg_test/out_b']);
    // A trailing segment without a 2-D weight (here a softmax) is looked through, like a weightless layer.
    const softmax: Segment = { name: 'softmax', params: [], forward: ([x]) => [tf.softmax(x)] };
    const lora = applyLoraToSegments(segmentModel([...base.segments, softmax]), { targets: 'all-linear', modulesToSave: 'output', rank: 2, seed: 1 });
    const [outW, outB] = base.segments[2].params;
    expect(modelVariables(base).filter((v) => v.trainable)).to.have.members([outW, outB]);
    expect(lora.trainableParams).to.equal(2 * (4 + 6) + 2 * (6 + 6) + 6 * 2 + 2);
    lora.dispose();
    const scale = tf.variable(tf.ones([3]));
    const noMatrix = segmentModel([{ name: 'scale', params: [scale], forward: ([x], ctx) => [tf.mul(x, readParam(ctx, scale))] }]);
    expect(thrown(() => applyLoraToSegments(noMatrix, { targets: 'output', rank: 1 })).message).to.match(/targets selector 'output' matches no variable: the output head is the last segment with a 2-D float32 weight, and this model has none/);
    scale.dispose();
  });

  it('the dry run logs and returns the plan and changes nothing', () => {
    const tensors = tf.memory().numTensors;
    const lines: string[] = [];
    const logger = { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(`warn: ${s}`) };
    const p = applyLoraToSegments(base, { targets: 'all-linear', rank: 2, modulesToSave: 'out', dryRun: true, logger });
    expect(p.adapted.map((l) => [l.path, l.fanIn, l.fanOut, l.adapterParams])).to.deep.equal([
      ['enc_q/seg_test/q_w', 4, 6, 20],
      ['enc_v/seg_test/v_w', 6, 6, 24],
    ]);
    expect(p.saved.map((s) => s.path)).to.deep.equal(['out/seg_test/out_w', 'out/seg_test/out_b']);
    expect(p.trainableParams).to.equal(20 + 24 + 12 + 2);
    expect(lines).to.deep.equal([formatPlan(p)]);
    const [title, header] = lines[0].split('\n');
    expect(title).to.equal('LoRA plan (rank 2):');
    expect(header).to.match(/^variable +class +kernel/);
    expect(modelVariables(base).every((v) => v.trainable)).to.equal(true);
    expect(tf.memory().numTensors).to.equal(tensors);
  });

  it('an unmatched target is an error that names it, lists the variables and changes nothing', () => {
    const tensors = tf.memory().numTensors;
    const err = thrown(() => applyLoraToSegments(base, { targets: ['seg_test/q_w', 'q_proj', 'v_w', 'seg_test/q_b'], rank: 2 }));
    expect(err).to.be.instanceOf(TapfitError);
    expect(err.message).to.include("targets selector 'q_proj' matches no variable.");
    expect(err.message).to.include("targets selector 'v_w' matches no variable. Did you mean the suffix selector '*v_w' (matches enc_v/seg_test/v_w)?");
    expect(err.message).to.match(/targets selector 'seg_test\/q_b' matches only variables LoRA cannot adapt: enc_q\/seg_test\/q_b \(1-D \[6\]; LoRA on segments adapts 2-D weights/);
    expect(err.message).to.include('Variables of this segment model: enc_q/seg_test/q_w (4x6), enc_q/seg_test/q_b (6), enc_v/seg_test/v_w (6x6)');
    expect(err.message).to.include('out/seg_test/out_w (6x2, output head)');
    expect(modelVariables(base).every((v) => v.trainable)).to.equal(true);
    expect(tf.memory().numTensors).to.equal(tensors);
  });

  it('refuses bad options and models with clear errors', () => {
    expect(thrown(() => applyLoraToSegments(base, { targets: 'all-conv2d', rank: 2 })).message).to.match(/'all-conv2d' cannot be used on a segment model/);
    expect(thrown(() => applyLoraToSegments(base, { targets: 'out', rank: 3 })).message).to.match(/option 'rank' = 3 exceeds min\(in, out\) = min\(6, 2\) of variable 'out\/seg_test\/out_w'/);
    expect(thrown(() => applyLoraToSegments(base, { targets: 'out', rank: 1, dropout: 0.1 })).message).to.match(/option 'dropout' = 0.1 is not supported on segment models.*Use dropout: 0/);
    expect(thrown(() => applyLoraToSegments(base, { targets: 'out', rank: 1, modulesToSave: 'seg_test/out_w' })).message).to.match(/'out\/seg_test\/out_w' is both a LoRA target and in modulesToSave/);
    expect(thrown(() => applyLoraToSegments(base, { targets: 'all-dense', exclude: 'zzz', rank: 1 })).message).to.match(/exclude selector 'zzz' matches no variable/);
    expect(thrown(() => applyLoraToSegments(base, { targets: [], rank: 1 })).message).to.match(/option 'targets' is empty/);
    const one = segmentModel([denseSegment('only', seeded([3, 2], 1), seeded([2], 2))]);
    expect(thrown(() => applyLoraToSegments(one, { targets: 'all-linear', rank: 1 })).message).to.match(/'all-linear' matches no variable: every 2-D variable is in the output head segment 'only'.*Use 'all-dense'/);
    disposeModel(one);
    const layers = mlp();
    expect(thrown(() => applyLoraToSegments(fromLayersModel(layers), { targets: 'fc1', rank: 1 })).message).to.match(/use applyLora\(model.layersModel, options\)/);
    layers.dispose();
    // Twice on the same variables, or on a LoRA model, is refused.
    const lora = applyLoraToSegments(base, { targets: 'out', rank: 1, seed: 1 });
    expect(thrown(() => applyLoraToSegments(base, { targets: 'out', rank: 1 })).message).to.match(/out\/seg_test\/out_w are already adapted by LoRA/);
    expect(thrown(() => applyLoraToSegments(lora.model, { targets: 'enc_q', rank: 1 })).message).to.match(/segments out already have LoRA adapters/);
    lora.dispose();
    expect(modelVariables(base).every((v) => v.trainable)).to.equal(true);
  });
});

describe('applyLoraToSegments: merge, unmerge, unload, dispose', () => {
  useCpu();

  it('merged and unmerged outputs agree within 1e-5 (1 + |y|) (bitwise here: merge adds the same s·A·B the forward does)', () => {
    const base = denseSegments();
    const lora = applyLoraToSegments(base, { targets: 'all-dense', rank: 2, seed: 3 });
    perturb(lora);
    const x = tf.randomNormal([6, 4], 0, 1, 'float32', 1);
    const yb = run(base, x); // base shares W, so read it before merging
    const yu = run(lora.model, x);
    expect(maxAbsDiff(yu, yb)).to.be.above(1e-3); // the adapter matters
    lora.merge();
    expect(lora.isMerged).to.equal(true);
    const ym = run(lora.model, x);
    expect(agree(ym, yu)).to.equal(true);
    expect(sameValues(ym, yu)).to.equal(true);
    // Merged, the base model itself (same variables) computes the adapted function.
    const ybm = run(base, x);
    expect(sameValues(ybm, ym)).to.equal(true);
    tf.dispose([x, yb, yu, ym, ybm]);
    lora.dispose();
    disposeModel(base);
  });

  it('merge then unmerge restores W bit for bit; merging twice and unmerging unmerged are errors that change nothing', () => {
    const base = denseSegments();
    const lora = applyLoraToSegments(base, { targets: 'all-dense', rank: 2, seed: 3 });
    perturb(lora);
    const before = lora.adapters.map((a) => tf.clone(a.W));
    expect(thrown(() => lora.unmerge()).message).to.match(/unmerge: adapter 'default' is not merged \(variables fc1\/param0, head\/param0\); nothing to unmerge/);
    lora.merge();
    const merged = lora.adapters.map((a) => tf.clone(a.W));
    lora.adapters.forEach((a, i) => expect(maxAbsDiff(a.W, before[i])).to.be.above(1e-3));
    const err = thrown(() => lora.merge());
    expect(err).to.be.instanceOf(TapfitError);
    expect(err.message).to.match(/merge: adapter 'default' is already merged .*merging twice would add the update twice\. Call unmerge\(\) first/);
    lora.adapters.forEach((a, i) => expect(sameValues(a.W, merged[i])).to.equal(true));
    lora.unmerge();
    expect(lora.isMerged).to.equal(false);
    lora.adapters.forEach((a, i) => expect(sameValues(a.W, before[i])).to.equal(true));
    tf.dispose([...before, ...merged]);
    lora.dispose();
    disposeModel(base);
  });

  it('a merge that would not be finite changes no weight; training a merged model is refused', () => {
    const base = denseSegments();
    const lora = applyLoraToSegments(base, { targets: 'all-dense', rank: 2, seed: 3 });
    perturb(lora);
    const before = lora.adapters.map((a) => tf.clone(a.W));
    const bad = tf.fill(lora.adapters[1].B.shape, NaN);
    lora.adapters[1].B.assign(bad);
    expect(thrown(() => lora.merge()).message).to.match(/merge: the result is not finite for head\/param0.*Nothing was changed/);
    expect(lora.isMerged).to.equal(false);
    lora.adapters.forEach((a, i) => expect(sameValues(a.W, before[i])).to.equal(true));
    perturb(lora);
    lora.merge();
    const x = tf.ones([1, 4]);
    expect(thrown(() => run(lora.model, x, trainCtx)).message).to.match(/segment 'fc1': adapter 'default' is merged into its weights; call unmerge\(\) before training/);
    tf.dispose([...before, bad, x]);
    lora.dispose();
    disposeModel(base);
  });

  it('unload() folds the adapter in and gives the base back with its flags; dispose() gives it back unmerged', () => {
    const base = denseSegments();
    const frozen = base.segments[1].params[1];
    frozen.trainable = false; // a flag set by the user survives the round trip
    const x = tf.randomNormal([3, 4], 0, 1, 'float32', 2);
    const y0 = run(base, x);
    const lora = applyLoraToSegments(base, { targets: 'fc1', rank: 2, seed: 1, modulesToSave: 'head/param0' });
    expect(modelVariables(base).map((v) => v.trainable)).to.deep.equal([false, false, true, false]);
    perturb(lora);
    const yu = run(lora.model, x);
    const plain = lora.unload();
    expect(plain).to.equal(base);
    expect(modelVariables(base).map((v) => v.trainable)).to.deep.equal([true, true, true, false]);
    expect(lora.adapters[0].A.isDisposed).to.equal(true);
    const yp = run(plain, x);
    expect(sameValues(yp, yu)).to.equal(true);
    expect(thrown(() => lora.merge()).message).to.match(/merge: this LoRA was unloaded or disposed/);
    expect(thrown(() => run(lora.model, x)).message).to.match(/this LoRA was unloaded or disposed; run the model unload\(\) returned/);

    // dispose() while merged unmerges first.
    const again = applyLoraToSegments(base, { targets: 'fc1', rank: 2, seed: 1 });
    perturb(again);
    const w = tf.clone(base.segments[0].params[0]);
    again.merge();
    again.dispose();
    expect(maxAbsDiff(base.segments[0].params[0], w)).to.be.below(1e-6);
    expect(modelVariables(base).map((v) => v.trainable)).to.deep.equal([true, true, true, false]);
    tf.dispose([x, y0, yu, yp, w]);
    disposeModel(base);
  });
});
