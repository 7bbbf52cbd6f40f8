import * as tf from '@tensorflow/tfjs';
import { sgd, SilentLogger, tensorData, Trainer, type TrainerOptions } from '@tapfit/core';
import { blobData, seededRandom, tinyModel } from '@tapfit/core/testing';
import { expect } from 'chai';
import { pipeline, stageDelays, type PipelineOptions } from '../src';
import { initialWeights, PipelineReference, segmentsOf, type ReferenceOptions } from './reference';

const sizes = [3, 5, 4, 2];
const lr = 0.05;
const m = 0.9;
const steps = 24;

function samples(n: number, seed: number) {
  const r = seededRandom(seed);
  const xs = Array.from({ length: n }, () => Array.from({ length: sizes[0] }, () => r() * 2 - 1));
  const ys = Array.from({ length: n }, () => Array.from({ length: sizes.at(-1)! }, () => r() * 2 - 1));
  return { xs, ys };
}

/** Trains the 3-stage tanh chain with the plugin at batch 1 and with the float64 reference; returns both weight sets and losses. */
async function compare(options: Omit<PipelineOptions, 'stages'>, extra: Partial<ReferenceOptions> = {}) {
  const w0 = initialWeights(sizes, 7);
  const { xs, ys } = samples(steps, 8);
  const delays = stageDelays(3, options.extraDelay ?? 0);
  const ref = new PipelineReference(w0, {
    sizes,
    delays,
    lr,
    momentum: m,
    compensation: options.compensation ?? 'none',
    prediction: options.prediction ?? 'none',
    weightStashing: options.weightStashing ?? false,
    ...extra,
  });
  const refLosses = xs.map((x, t) => ref.step(x, ys[t]));

  const { model, variables } = segmentsOf(w0);
  const plugin = pipeline({ ...options, boundaries: ['layer2', 'layer3'] });
  const trainer = new Trainer({ model, loss: 'meanSquaredError', optimizer: sgd({ lr, momentum: m }), plugins: [plugin], logger: new SilentLogger() });
  // Two halves: once every stage holds its D_s + 1 versions, the second half must leave the tensor count as it was.
  const half = steps / 2;
  const first = tensorData(tf.tensor2d(xs.slice(0, half)), tf.tensor2d(ys.slice(0, half)));
  const second = tensorData(tf.tensor2d(xs.slice(half)), tf.tensor2d(ys.slice(half)));
  await trainer.fit(first, { epochs: 1, batchSize: 1, shuffle: false });
  const before = tf.memory().numTensors;
  await trainer.fit(second, { epochs: 1, batchSize: 1, shuffle: false });
  const afterFit = tf.memory().numTensors;
  const got = variables.map((v) => v.arraySync() as number[][]);
  trainer.dispose();
  first.dispose();
  second.dispose();
  tf.dispose(variables);
  return { got, want: ref.w, refLosses, leaked: afterFit - before, plugin };
}

function maxRelError(got: number[][][], want: number[][][]): number {
  let e = 0;
  got.forEach((w, s) => w.forEach((row, i) => row.forEach((x, j) => (e = Math.max(e, Math.abs(x - want[s][i][j]) / (1e-3 + Math.abs(want[s][i][j])))))));
  return e;
}

describe('the simulated pipeline against a float64 reference of docs/techniques.md §5.2-§5.4 (3 stages, D = [4, 2, 0], batch 1)', () => {
  const cases: [string, Omit<PipelineOptions, 'stages'>][] = [
    ['PB alone (forward at old weights, backward at current weights)', {}],
    ['PB with weight stashing (pure delay)', { weightStashing: true }],
    ['PB + SC', { compensation: 'sc' }],
    ['PB + LWP (velocity)', { prediction: 'lwp-velocity' }],
    ['PB + LWP (weight delta)', { prediction: 'lwp-delta' }],
    ['PB + SC + LWP (velocity)', { compensation: 'sc', prediction: 'lwp-velocity' }],
    ['PB + SC + LWP (weight delta), extraDelay 1', { compensation: 'sc', prediction: 'lwp-delta', extraDelay: 1 }],
  ];
  for (const [label, options] of cases) {
    it(`${label}: same weights after ${steps} steps (float32 vs float64), no tensors left behind`, async () => {
      const r = await compare(options);
      expect(maxRelError(r.got, r.want)).to.be.below(2e-4);
      expect(r.leaked).to.equal(0);
    });
  }

  it('the reference comparison can fail: the plugin without SC does not match a reference with SC', async () => {
    const r = await compare({}, { compensation: 'sc' });
    expect(maxRelError(r.got, r.want)).to.be.above(1e-2);
  });

  it('the reference comparison can fail: PB alone differs from weight stashing', async () => {
    const r = await compare({}, { weightStashing: true });
    expect(maxRelError(r.got, r.want)).to.be.above(1e-3);
  });
});

describe('pipeline with S = 1', () => {
  const options = (plugins: TrainerOptions['plugins']): TrainerOptions => ({
    model: tinyModel({ seed: 3 }),
    loss: 'softmaxCrossEntropy',
    optimizer: sgd({ lr: 0.1, momentum: 0.9, weightDecay: 1e-3 }),
    plugins,
    logger: new SilentLogger(),
  });
  for (const extra of [{}, { compensation: 'sc' as const, prediction: 'lwp-velocity' as const }, { prediction: 'lwp-delta' as const }]) {
    it(`equals plain momentum SGD bit for bit (${JSON.stringify(extra)})`, async () => {
      const run = async (plugins: TrainerOptions['plugins']) => {
        const t = new Trainer(options(plugins));
        const data = blobData(48);
        await t.fit(data, { epochs: 2, batchSize: 4 });
        const w = Object.values(t.variables).map((v) => Array.from(v.dataSync()));
        t.dispose();
        data.dispose();
        return w;
      };
      expect(await run([pipeline({ stages: 1, ...extra })])).to.deep.equal(await run([]));
    });
  }
});

describe('pipeline on a tfjs-layers model (layers read their variables directly: the stage forward swaps them)', () => {
  it('2 stages, weight stashing, no SC/LWP: equals training with gradients computed at the weights of D_s updates ago', async () => {
    // Stage 1 (hidden, D = 2) computes its gradient at w_{t-2}, stage 2 (out, D = 0) at w_t.
    const data = blobData(24);
    const plugin = pipeline({ stages: 2, weightStashing: true });
    const t = new Trainer({ model: tinyModel({ seed: 4 }), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.5 }), plugins: [plugin], logger: new SilentLogger() });
    await t.fit(data, { epochs: 1, batchSize: 2, shuffle: false });
    expect(plugin.stages.map((s) => s.delay)).to.deep.equal([2, 0]);
    expect(plugin.stages.map((s) => s.segments)).to.deep.equal([['hidden'], ['out']]);

    // Reference: plain autodiff of the whole model with 'hidden' set to its weights of two updates ago.
    const ref = tinyModel({ seed: 4 });
    const [k1, b1, k2, b2] = ref.trainableWeights.map((w) => w.read() as tf.Variable);
    const history: tf.Tensor[][] = [];
    // (history grows: this reference keeps every version)
    const vel: tf.Tensor[] = [k1, b1, k2, b2].map((v) => tf.zerosLike(v));
    for (let step = 0; step < 12; step++) {
      history.push([k1, b1].map((v) => tf.clone(v)));
      const [ok1, ob1] = history[Math.max(0, step - 2)];
      const x = tf.slice(data.x, step * 2, 2);
      const y = tf.slice(data.y, step * 2, 2);
      const cur = [tf.clone(k1), tf.clone(b1)];
      k1.assign(ok1);
      b1.assign(ob1);
      const { grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(tf.oneHot(y, 3), ref.apply(x) as tf.Tensor) as tf.Scalar, [k1, b1, k2, b2]);
      k1.assign(cur[0]);
      b1.assign(cur[1]);
      [k1, b1, k2, b2].forEach((v, i) => {
        const nv = tf.add(tf.mul(vel[i], 0.5), grads[v.name]);
        vel[i].dispose();
        vel[i] = nv;
        v.assign(tf.sub(v, tf.mul(nv, 0.1)));
      });
    }
    const got = Object.values(t.variables).map((v) => Array.from(v.dataSync()));
    const want = [k1, b1, k2, b2].map((v) => Array.from(v.dataSync()));
    got.forEach((g, i) => g.forEach((x, j) => expect(x).to.be.closeTo(want[i][j], 1e-5)));
    t.dispose();
    data.dispose();
    ref.dispose();
  });
});

describe('the delayed-gradient trainer (one stage, extraDelay D, weight stashing): SC and LWP without a pipeline', () => {
  for (const options of [{}, { compensation: 'sc' as const }, { compensation: 'sc' as const, prediction: 'lwp-delta' as const }]) {
    it(`every gradient is computed on the weights of D = 3 updates ago and applied at once (${JSON.stringify(options)})`, async () => {
      const w0 = initialWeights([3, 2], 9);
      const { xs, ys } = samples(20, 10);
      const ref = new PipelineReference(w0, { sizes: [3, 2], delays: [3], lr, momentum: m, compensation: options.compensation ?? 'none', prediction: options.prediction ?? 'none', weightStashing: true });
      xs.forEach((x, t) => ref.step(x, ys[t].slice(0, 2)));
      const { model, variables } = segmentsOf(w0);
      const t = new Trainer({ model, loss: 'meanSquaredError', optimizer: sgd({ lr, momentum: m }), plugins: [pipeline({ stages: 1, extraDelay: 3, weightStashing: true, ...options })], logger: new SilentLogger() });
      const data = tensorData(tf.tensor2d(xs), tf.tensor2d(ys.map((y) => y.slice(0, 2))));
      await t.fit(data, { epochs: 1, batchSize: 1, shuffle: false });
      expect(maxRelError([variables[0].arraySync() as number[][]], ref.w)).to.be.below(2e-4);
      t.dispose();
      data.dispose();
      tf.dispose(variables);
    });
  }
});
