import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { AutodiffBackprop, BudgetPlanner, fromLayersModel, losses, segmentModel, SegmentExecutor, SilentLogger, sgd, TapfitError, tensorData, Tokens, Trainer, type MemoryPolicy, type Segment, type TrainableModel } from '../../src';
import { coupledDense, dense, disposeModel, planOf, referenceGrads, requestOf, relativeError, residualBlock, residualMlp, reversibleNet, smallCnn, toArrays, training } from './models';

const mse = losses.meanSquaredError;
const xent = losses.softmaxCrossEntropy;
type Loss = typeof mse;

/** The executor's loss and gradients for one step under `policy`. */
function executorStep(model: TrainableModel, x: tf.Tensor, y: tf.Tensor, loss: Loss, policy: (name: string, i: number) => MemoryPolicy) {
  const vars = [...new Set(model.segments.flatMap((s) => s.params))];
  const r = new SegmentExecutor().compute(requestOf(model, planOf(model, policy), x, y, loss, { variables: vars }));
  const out = { value: r.value.dataSync()[0], grads: toArrays(r.grads) };
  tf.dispose([r.value, ...Object.values(r.grads)]);
  return out;
}

function expectSameGradients(model: TrainableModel, x: tf.Tensor, y: tf.Tensor, loss: Loss, policy: (name: string, i: number) => MemoryPolicy, tol = 1e-5): number {
  const ref = referenceGrads(model, x, y, loss);
  const got = executorStep(model, x, y, loss, policy);
  expect(Object.keys(got.grads).sort()).to.deep.equal(Object.keys(ref.grads).sort());
  expect(Math.abs(got.value - ref.value) / Math.abs(ref.value)).to.be.below(1e-6);
  let worst = 0;
  for (const [name, g] of Object.entries(ref.grads)) worst = Math.max(worst, relativeError(got.grads[name], g));
  expect(worst).to.be.below(tol);
  return worst;
}

const allOf = (p: MemoryPolicy) => () => p;
const cycle = (...ps: MemoryPolicy[]) => (_: string, i: number) => ps[i % ps.length];

describe('memory: SegmentExecutor', () => {
  before(async () => {
    await tf.setBackend('cpu');
    tf.env().set('PROD', true);
  });

  describe('gradients equal plain autodiff', () => {
    const x = () => tf.randomNormal([5, 8], 0, 1, 'float32', 1);
    const labels = () => tf.tensor1d([0, 1, 2, 1, 0], 'int32');

    for (const [label, policy] of [
      ['all store', allOf('store')],
      ['all recompute', allOf('recompute')],
      ['store/recompute alternating', cycle('store', 'recompute')],
      ['recompute/recompute/store', cycle('recompute', 'recompute', 'store')],
    ] as const) {
      it(`residual MLP, ${label}`, () => {
        const model = residualMlp(5);
        const [xs, ys] = [x(), labels()];
        expectSameGradients(model, xs, ys, xent, policy);
        tf.dispose([xs, ys]);
        disposeModel(model);
      });
    }

    it('small CNN, mixed policies (store stem, recompute / store blocks)', () => {
      const model = smallCnn(3);
      const xs = tf.randomNormal([2, 6, 6, 1], 0, 1, 'float32', 2);
      const ys = tf.tensor1d([2, 0], 'int32');
      expectSameGradients(model, xs, ys, xent, cycle('store', 'recompute', 'recompute'));
      expectSameGradients(model, xs, ys, xent, allOf('recompute'));
      tf.dispose([xs, ys]);
      disposeModel(model);
    });

    it('reversible coupling blocks under invert, and mixed with store and recompute', () => {
      const calls = { inverse: 0 };
      const model = reversibleNet(4, 4, 3, calls);
      const xs = tf.randomNormal([6, 8], 0, 1, 'float32', 3);
      const ys = tf.randomNormal([6, 3], 0, 1, 'float32', 4);
      const invertible = (n: string) => n.startsWith('coupling') || n === 'merge';
      // split, coupling0..3, merge, head
      const worst = expectSameGradients(model, xs, ys, mse, (n) => (invertible(n) ? 'invert' : 'store'));
      // Inputs not held above are rebuilt: coupling1..3 and merge (coupling0's input comes from the split, which
      // nothing differentiates, so it is rebuilt too).
      expect(calls.inverse).to.equal(5);
      expect(worst).to.be.above(0); // reconstruction is exact only up to float32 rounding...
      calls.inverse = 0;
      const mixed: Record<string, MemoryPolicy> = { coupling0: 'recompute', coupling1: 'invert', coupling2: 'store', coupling3: 'invert', merge: 'invert' };
      expectSameGradients(model, xs, ys, mse, (n) => mixed[n] ?? 'store');
      // coupling1's input is coupling0's output (recompute hands it down owned): rebuilt. coupling3's input is held
      // by coupling2 (store): not rebuilt. merge's input is coupling3's output (invert hands it down owned): rebuilt.
      expect(calls.inverse).to.equal(2);
      tf.dispose([xs, ys]);
      disposeModel(model);
    });

    it("reversible coupling blocks with their own backward (RevNet's one-pass rebuild and VJP) under invert", () => {
      const calls = { inverse: 0, backward: 0 };
      const model = reversibleNet(4, 4, 3, calls, true);
      const xs = tf.randomNormal([6, 8], 0, 1, 'float32', 3);
      const ys = tf.randomNormal([6, 3], 0, 1, 'float32', 4);
      expectSameGradients(model, xs, ys, mse, (n) => (n.startsWith('coupling') || n === 'merge' ? 'invert' : 'store'));
      // Every coupling rebuilds through backward (merge has none, so it uses inverse); nothing else runs inverse.
      expect(calls).to.deep.equal({ inverse: 1, backward: 4 });
      const mixed: Record<string, MemoryPolicy> = { coupling0: 'recompute', coupling1: 'invert', coupling2: 'store', coupling3: 'invert', merge: 'invert' };
      calls.inverse = calls.backward = 0;
      expectSameGradients(model, xs, ys, mse, (n) => mixed[n] ?? 'store');
      // coupling3's input is held by coupling2 (store): its VJP re-runs the forward instead.
      expect(calls).to.deep.equal({ inverse: 1, backward: 1 });
      tf.dispose([xs, ys]);
      disposeModel(model);
    });

    it('a variable shared by two segments gets the sum of both gradients', () => {
      const shared = residualBlock('a', 4, 6, 7);
      const twin: Segment = { ...shared, name: 'b' };
      const model = segmentModel([shared, twin, dense('head', 4, 2, 9)]);
      const xs = tf.randomNormal([3, 4], 0, 1, 'float32', 5);
      const ys = tf.randomNormal([3, 2], 0, 1, 'float32', 6);
      expectSameGradients(model, xs, ys, mse, cycle('recompute', 'store'));
      tf.dispose([xs, ys]);
      disposeModel(model);
    });

    it('a loss that reads a variable itself (weight penalty) gives it a gradient', () => {
      const model = residualMlp(2, 4, 6, 2);
      const w = model.segments[0].params[0];
      const penalised: Loss = (yt, yp) => tf.add(mse(yt, yp), tf.mul(0.1, tf.sum(tf.square(w)))) as tf.Scalar;
      const xs = tf.randomNormal([3, 4], 0, 1, 'float32', 5);
      const ys = tf.randomNormal([3, 2], 0, 1, 'float32', 6);
      expectSameGradients(model, xs, ys, penalised, allOf('recompute'));
      tf.dispose([xs, ys]);
      disposeModel(model);
    });

    it('frozen variables get no gradient and segments above the first trainable one are not differentiated', () => {
      const model = residualMlp(3, 4, 6, 2);
      const frozen = model.segments[0].params;
      const trainable = model.segments.slice(1).flatMap((s) => s.params);
      const xs = tf.randomNormal([3, 4], 0, 1, 'float32', 5);
      const ys = tf.randomNormal([3, 2], 0, 1, 'float32', 6);
      const ref = tf.variableGrads(() => mse(ys, model.segments.reduce((h, s) => s.forward(h, training), [xs])[0]), trainable);
      const got = new SegmentExecutor().compute(requestOf(model, planOf(model, allOf('recompute')), xs, ys, mse, { variables: trainable }));
      expect(Object.keys(got.grads).sort()).to.deep.equal(trainable.map((v) => v.name).sort());
      for (const v of trainable) expect(relativeError(got.grads[v.name].dataSync(), ref.grads[v.name].dataSync())).to.be.below(1e-5);
      expect(frozen.every((v) => !(v.name in got.grads))).to.equal(true);
      tf.dispose([xs, ys, got.value, ref.value, ...Object.values(got.grads), ...Object.values(ref.grads)]);
      disposeModel(model);
    });
  });

  describe('stateful segments and ctx.recomputing', () => {
    /** Counts forwards that should advance state (training and not recomputing), and recomputes. */
    function counting(inner: Segment, counts: { updates: number; recomputes: number }): Segment {
      return {
        ...inner,
        forward: (xs, ctx) => {
          if (ctx.training && !ctx.recomputing) counts.updates++;
          if (ctx.recomputing) counts.recomputes++;
          return inner.forward(xs, ctx);
        },
      };
    }

    for (const policy of ['store', 'recompute', 'invert'] as const) {
      it(`a '${policy}' segment advances its state once per step`, () => {
        const counts = { updates: 0, recomputes: 0 };
        const body = counting(policy === 'invert' ? coupledDense('c', 3, 11) : residualBlock('c', 6, 4, 11), counts);
        const model = segmentModel([residualBlock('first', 6, 4, 3), body, dense('head', 6, 2, 4)]);
        const xs = tf.randomNormal([2, 6], 0, 1, 'float32', 8);
        const ys = tf.randomNormal([2, 2], 0, 1, 'float32', 9);
        const executor = new SegmentExecutor();
        const plan = planOf(model, (n) => (n === 'c' ? policy : 'recompute'));
        for (let step = 0; step < 3; step++) {
          const r = executor.compute(requestOf(model, plan, xs, ys, mse, { ctx: { ...training, step } }));
          tf.dispose([r.value, ...Object.values(r.grads)]);
        }
        expect(counts.updates).to.equal(3);
        expect(counts.recomputes).to.equal(policy === 'store' ? 0 : 3);
        tf.dispose([xs, ys]);
        disposeModel(model);
      });
    }
  });

  describe('tfjs-layers layers that draw noise or carry state', () => {
    const dropoutNet = () =>
      fromLayersModel(
        tf.sequential({
          layers: [
            tf.layers.dense({ units: 16, inputShape: [8], activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'd1' }),
            tf.layers.dropout({ rate: 0.5, name: 'drop' }),
            tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), name: 'head' }),
          ],
        }),
      );

    it('an unseeded Dropout recomputed replays its mask: gradients equal storing it (masks follow the context, not Math.random)', () => {
      const model = dropoutNet();
      const xs = tf.randomNormal([6, 8], 0, 1, 'float32', 3);
      const ys = tf.tensor1d([0, 1, 2, 1, 0, 2], 'int32');
      const stored = executorStep(model, xs, ys, xent, allOf('store'));
      const recomputed = executorStep(model, xs, ys, xent, (n) => (n === 'drop' ? 'recompute' : 'store'));
      const allRecomputed = executorStep(model, xs, ys, xent, allOf('recompute'));
      expect(recomputed.value).to.equal(stored.value);
      expect(recomputed.grads).to.deep.equal(stored.grads);
      expect(allRecomputed.grads).to.deep.equal(stored.grads);
      // The mask is live (the test can fail): another batch draws another mask.
      const vars = [...new Set(model.segments.flatMap((s) => s.params))];
      const other = new SegmentExecutor().compute(requestOf(model, planOf(model, allOf('store')), xs, ys, xent, { variables: vars, ctx: { ...training, step: 1 } }));
      expect(toArrays(other.grads)).to.not.deep.equal(stored.grads);
      tf.dispose([xs, ys, other.value, ...Object.values(other.grads)]);
      model.layersModel!.dispose();
    });

    it('stateful recurrent layers are not replayable: a plan recomputing them is refused naming the layer, and the planner keeps them stored (seeded noise layers are replayable)', () => {
      const noisy = fromLayersModel(tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [3], name: 'd' }), tf.layers.gaussianNoise({ stddev: 0.1, name: 'noise' }), tf.layers.dense({ units: 2, name: 'out' })] }));
      expect(noisy.segments.map((s) => s.notReplayable)).to.deep.equal([undefined, undefined, undefined]);
      // dense (on the last axis) -> stateful SimpleRNN -> dense: the RNN in the middle.
      const rnn = fromLayersModel(
        tf.sequential({ layers: [tf.layers.dense({ units: 2, batchInputShape: [2, 3, 2], name: 'd' }), tf.layers.simpleRNN({ units: 4, stateful: true, name: 'rnn' }), tf.layers.dense({ units: 2, name: 'out' })] }),
      );
      expect(rnn.segments.map((s) => s.notReplayable)).to.deep.equal([undefined, "SimpleRNN 'rnn' is stateful: each call advances its state", undefined]);
      const xs = tf.zeros([2, 3, 2]);
      const before = tf.memory().numTensors;
      expect(() => new SegmentExecutor().compute(requestOf(rnn, planOf(rnn, allOf('recompute')), xs, tf.zeros([2, 2]), mse))).to.throw(
        TapfitError,
        /segment 'rnn' is planned 'recompute', but its forward cannot be replayed \(SimpleRNN 'rnn' is stateful: each call advances its state\).*Plan it 'store'/,
      );
      expect(tf.memory().numTensors).to.equal(before + 1); // the labels made inline
      const costs = rnn.segments.map((seg, i) => ({ name: seg.name, notReplayable: seg.notReplayable, differentiable: true, inputBytes: 0, outputBytes: 0, forwardPeakBytes: 0, forwardMs: 1, inputGradBytes: 0, storedBytes: 1e6 * (i + 1), storeForwardPeakBytes: 0, storeBackwardPeakBytes: 0, storeNetBytes: 0, vjpPeakBytes: 0, vjpNetBytes: 0 }));
      const plan = new BudgetPlanner({ budgetBytes: 2_000_000, profile: { segments: costs, head: { peakBytes: 0, netBytes: 0, inputGradBytes: 0 } } as never }).fit(planOf(rnn, allOf('store')));
      expect(plan.segments.find((s) => s.name === 'rnn')!.policy).to.equal('store');
      expect(plan.segments.filter((s) => s.policy === 'recompute').map((s) => s.name)).to.deep.equal(['d', 'out']);
      tf.dispose(xs);
      noisy.layersModel!.dispose();
      rnn.layersModel!.dispose();
    });
  });

  describe('errors', () => {
    const stepOf = (model: TrainableModel, policy: (n: string, i: number) => MemoryPolicy, xs: tf.Tensor) => () =>
      new SegmentExecutor().compute(requestOf(model, planOf(model, policy), xs, xs, (_, p) => tf.sum(p) as tf.Scalar));

    it("'invert' on a segment without inverse names the segment", () => {
      const model = residualMlp(2);
      const xs = tf.zeros([2, 8]);
      const before = tf.memory().numTensors;
      expect(stepOf(model, (n) => (n === 'block1' ? 'invert' : 'store'), xs)).to.throw(TapfitError, /segment 'block1' is planned 'invert' but has no inverse/);
      expect(tf.memory().numTensors).to.equal(before);
      xs.dispose();
      disposeModel(model);
    });

    it('a backward() that returns the wrong number of gradients names the segment, and leaves no tensors behind', () => {
      const model = reversibleNet(2, 4, 3, undefined, true);
      const broken: Segment = { ...model.segments[1], backward: (ys, dys, vars, ctx) => ({ ...model.segments[1].backward!(ys, dys, vars, ctx), grads: [] }) };
      const bad = segmentModel([model.segments[0], broken, ...model.segments.slice(2)]);
      const xs = tf.randomNormal([2, 8]);
      const before = tf.memory().numTensors;
      const step = () => new SegmentExecutor().compute(requestOf(bad, planOf(bad, (n) => (n === 'coupling0' ? 'invert' : 'store')), xs, xs, (_, p) => tf.sum(p) as tf.Scalar));
      expect(step).to.throw(TapfitError, /segment 'coupling0': backward\(\) must return/);
      expect(tf.memory().numTensors).to.equal(before);
      xs.dispose();
      disposeModel(model);
    });

    it('a plan naming a segment the model lacks is rejected', () => {
      const model = residualMlp(1);
      const plan = { segments: [{ name: 'nope', policy: 'store' as const }], extraBytes: [] };
      const xs = tf.zeros([2, 8]);
      expect(() => new SegmentExecutor().compute(requestOf(model, plan, xs, xs, (_, p) => tf.sum(p) as tf.Scalar, { variables: [] })))
        .to.throw(TapfitError, /names segment 'nope'/)
        .with.property('code', 'TAPFIT_E_CONFIG');
      xs.dispose();
      disposeModel(model);
    });

    it('a failure inside a segment leaves no tensors behind', () => {
      const model = residualMlp(3);
      const bad: Segment = { name: 'bad', params: [], forward: ([x]) => [tf.reshape(x, [7, -1])] };
      const broken = segmentModel([...model.segments.slice(0, 2), bad, ...model.segments.slice(2)]);
      const xs = tf.randomNormal([2, 8]);
      const before = tf.memory().numTensors;
      for (const p of ['store', 'recompute'] as const) {
        expect(stepOf(broken, allOf(p), xs)).to.throw(/shape/i);
        expect(tf.memory().numTensors).to.equal(before);
      }
      xs.dispose();
      disposeModel(model);
    });
  });

  describe('memory', () => {
    for (const fused of [false, true]) {
    it(`leaves no tensors behind over many steps, under every policy${fused ? ' (couplings with their own backward)' : ''}`, () => {
      const model = reversibleNet(3, 4, 3, undefined, fused);
      const xs = tf.randomNormal([4, 8]);
      const ys = tf.randomNormal([4, 3]);
      const executor = new SegmentExecutor();
      const vars = model.segments.flatMap((s) => s.params);
      for (const policy of ['store', 'recompute', 'invert'] as const) {
        const plan = planOf(model, (n) => (n.startsWith('coupling') || n === 'merge' ? policy : 'store'));
        const run = () => tf.dispose(Object.values(executor.compute(requestOf(model, plan, xs, ys, mse, { variables: vars })).grads));
        run();
        const before = tf.memory().numTensors;
        for (let i = 0; i < 20; i++) {
          const r = executor.compute(requestOf(model, plan, xs, ys, mse, { variables: vars }));
          tf.dispose([r.value, ...Object.values(r.grads)]);
        }
        expect(tf.memory().numTensors, policy).to.equal(before);
      }
      tf.dispose([xs, ys]);
      disposeModel(model);
    });
    }

    async function peakOf(model: TrainableModel, policy: MemoryPolicy | 'autodiff', batch: number): Promise<number> {
      const xs = tf.randomNormal([batch, 8]);
      const ys = tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 3), 'int32');
      const vars = model.segments.flatMap((s) => s.params);
      const backprop = policy === 'autodiff' ? new AutodiffBackprop() : new SegmentExecutor();
      const plan = planOf(model, () => (policy === 'autodiff' ? 'store' : policy));
      const start = tf.memory().numBytes;
      const info = await tf.profile(() => {
        const r = backprop.compute(requestOf(model, plan, xs, ys, xent, { variables: vars }));
        tf.dispose([r.value, ...Object.values(r.grads)]);
      });
      tf.dispose([xs, ys]);
      return info.peakBytes - start;
    }

    it('recompute keeps the peak nearly flat in depth; store and plain autodiff grow with every block', async () => {
      const growth: Record<string, number> = {};
      for (const policy of ['autodiff', 'store', 'recompute'] as const) {
        const shallow = residualMlp(4, 8, 64);
        const deep = residualMlp(12, 8, 64);
        growth[policy] = ((await peakOf(deep, policy, 512)) - (await peakOf(shallow, policy, 512))) / 8; // bytes per extra block
        disposeModel(shallow);
        disposeModel(deep);
      }
      const activation = 512 * 8 * 4; // one block's output
      expect(growth.recompute).to.be.at.most(1.01 * activation); // one kept input per block
      expect(growth.store).to.be.above(5 * activation); // the hidden layer (8x wider) and its relu are kept
      expect(growth.autodiff).to.be.above(growth.store); // ...plus every backward intermediate until the end
    });
  });

  describe('in a Trainer', () => {
    const executorPlugin = (plan?: (n: string) => MemoryPolicy) => ({
      name: 'segment-executor',
      core: '^0.1.0',
      provides: [Tokens.Backprop],
      apply: (api: import('../../src').PluginApi) => {
        api.services.register(Tokens.Backprop, new SegmentExecutor());
        if (plan) api.hooks.planMemory.tap('segment-executor', (p) => ({ ...p, segments: p.segments.map((s) => ({ ...s, policy: plan(s.name) })) }));
      },
    });

    async function train(plugins: ReturnType<typeof executorPlugin>[]): Promise<{ weights: Float64Array[]; losses: number[] }> {
      const model = residualMlp(3, 6, 10, 3, 77);
      const x = tf.randomNormal([24, 6], 0, 1, 'float32', 21);
      const y = tf.tensor1d(Array.from({ length: 24 }, (_, i) => i % 3), 'int32');
      const data = tensorData(x, y);
      const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), plugins, logger: new SilentLogger() });
      const history = await trainer.fit(data, { epochs: 3, batchSize: 8, shuffle: false });
      const weights = model.segments.flatMap((s) => s.params).map((v) => Float64Array.from(v.dataSync()));
      trainer.dispose();
      data.dispose();
      disposeModel(model);
      return { weights, losses: history.history.loss };
    }

    it('trains to the same weights as plain autodiff (registered by a plugin that provides Backprop)', async () => {
      const ref = await train([]);
      const mixed = await train([executorPlugin((n) => (n === 'block1' ? 'store' : 'recompute'))]);
      const plain = await train([executorPlugin()]);
      for (const got of [mixed, plain]) {
        got.weights.forEach((w, i) => expect(relativeError(w, ref.weights[i])).to.be.below(1e-5));
        got.losses.forEach((l, i) => expect(Math.abs(l - ref.losses[i])).to.be.below(1e-5 * Math.abs(ref.losses[i])));
      }
    });
  });
});
