import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { readParam, segmentModel, sgd, type Segment, type TrainableModel } from '@tapfit/core';
import { blobData, testTrainer } from '@tapfit/core/testing';
import { applyLoraToSegments, lora } from '../src';
import { useCpu } from './helpers';
import { denseSegments, disposeModel, seeded, trainCtx } from './segment-helpers';

// What LoRA on segments needs from models that other plugins build (reversible networks:
// plugin-revsilo's revBiFPN) and check (resume in the same process). The composition
// matrix in examples/test runs it on revBiFPN itself.

/** Hand-written segments plus a tfjs-layers view of nothing in particular: a builder's model such as revBiFPN. */
function withLayersView(model: TrainableModel): TrainableModel {
  const view = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3 })] });
  return { ...model, layersModel: view, dispose: () => view.dispose() };
}

let builds = 0;
/**
 * A layer-style segment model: each weight named under its segment's name with a build
 * counter ('fc1_2/kernel'), as tfjs layers (and revsilo's module layers) name theirs.
 */
function scopedSegments(): TrainableModel {
  builds++;
  const scope = (segment: string) => (builds === 1 ? segment : `${segment}_${builds}`);
  const dense = (name: string, inputs: number, units: number, seed: number): Segment => {
    const w = tf.variable(tf.randomNormal([inputs, units], 0, 0.5, 'float32', seed), true, `${scope(name)}/kernel`);
    return { name, params: [w], forward: ([x], ctx) => [tf.tanh(tf.matMul(x, readParam(ctx, w)))] };
  };
  return segmentModel([dense('fc1', 4, 6, 1), dense('head', 6, 3, 2)], { inputShape: [4], outputShape: [3] });
}

describe('lora on segment models that other plugins build', () => {
  useCpu();

  it('a model with its own segments and a tfjs-layers view goes through the segments (the view would drop them)', async () => {
    const base = withLayersView(denseSegments());
    const plugin = lora({ targets: 'fc1', rank: 2, seed: 1 });
    const trainer = testTrainer({ model: base, plugins: [plugin], optimizer: sgd({ lr: 0.5 }) });
    await trainer.setup();
    expect(() => plugin.lora, 'the segment path').to.throw(/use plugin\.segmentLora/);
    expect(trainer.model.segments).to.equal(plugin.segmentLora.model.segments);
    const { A, B } = plugin.segmentLora.adapters[0];
    expect(Object.values(trainer.variables)).to.have.members([A, B]);
    const data = blobData(24);
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    expect(trainer.step).to.equal(3);
    trainer.dispose();
    data.dispose();
    base.dispose!();
    disposeModel(base);
  });

  it('modulesToSave trains the head in full but leaves what was never trainable (normalisation statistics) frozen', () => {
    const w = seeded([4, 3], 1);
    const stat = tf.variable(tf.zeros([3]), false);
    const head: Segment = { name: 'head', params: [w, stat], forward: ([x], ctx) => [tf.sub(tf.matMul(x, readParam(ctx, w)), readParam(ctx, stat))] };
    const fc1 = seeded([4, 4], 2);
    const body: Segment = { name: 'fc1', params: [fc1], forward: ([x], ctx) => [tf.tanh(tf.matMul(x, readParam(ctx, fc1)))] };
    const seg = applyLoraToSegments(segmentModel([body, head]), { targets: 'fc1', rank: 1, modulesToSave: 'output', seed: 1 });
    expect(w.trainable, 'the head weight trains').to.equal(true);
    expect(stat.trainable, 'the statistic stays frozen').to.equal(false);
    expect(seg.trainableParams).to.equal(1 * (4 + 4) + 12);
    seg.dispose();
    tf.dispose([w, stat, fc1]);
  });

  it('paths drop a segment-named scope with its build counter, so two builds of one model have the same targets and a resume in the same process is accepted', async () => {
    const first = scopedSegments();
    const second = scopedSegments();
    expect(first.segments[0].params[0].name).not.to.equal(second.segments[0].params[0].name);
    const plan = (m: TrainableModel) => applyLoraToSegments(m, { targets: 'all-linear', rank: 1, dryRun: true, logger: { info() {}, warn() {} } }).adapted.map((l) => l.path);
    expect(plan(first)).to.deep.equal(['fc1/kernel']);
    expect(plan(second)).to.deep.equal(plan(first));
    // The plugin's checkpoint state, saved with one build, is accepted by the other.
    const saving = lora({ targets: 'all-linear', rank: 1, seed: 1 });
    const loading = lora({ targets: 'all-linear', rank: 1, seed: 1 });
    const t1 = testTrainer({ model: first, plugins: [saving] });
    const t2 = testTrainer({ model: second, plugins: [loading] });
    await Promise.all([t1.setup(), t2.setup()]);
    expect(() => loading.checkState!(saving.saveState!())).not.to.throw();
    t1.dispose();
    t2.dispose();
    disposeModel(first);
    disposeModel(second);
  });

  it("an inverse need not read every target (a growing RevSilo's inverse drops the stream it grew); a forward must", () => {
    const w = seeded([2, 2], 3);
    const grow: Segment = {
      name: 'grow',
      params: [w],
      forward: ([x], ctx) => [x, tf.matMul(x, readParam(ctx, w))],
      inverse: ([x]) => [x],
    };
    const seg = applyLoraToSegments(segmentModel([grow]), { targets: 'grow', rank: 1, seed: 1 });
    const x = tf.ones([1, 2]);
    const [wrapped] = seg.model.segments;
    const rebuilt = tf.tidy(() => Array.from(wrapped.inverse!(wrapped.forward([x], trainCtx), { ...trainCtx, recomputing: true })[0].dataSync()));
    expect(rebuilt).to.deep.equal([1, 1]);
    seg.dispose();
    const ignoring: Segment = { ...grow, name: 'ignores', forward: ([x2]) => [x2, tf.matMul(x2, w)] };
    const bad = applyLoraToSegments(segmentModel([ignoring]), { targets: 'ignores', rank: 1, seed: 1 });
    expect(() => tf.tidy(() => bad.model.segments[0].forward([x], trainCtx))).to.throw(/did not read ignores\/param0 through readParam/);
    bad.dispose();
    tf.dispose([x, w]);
  });
});
