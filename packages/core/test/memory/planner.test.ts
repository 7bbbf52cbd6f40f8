import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import {
  BudgetPlanner,
  losses,
  memoryBudget,
  predictPeak,
  predictPeakBytes,
  profileSegments,
  segmentModel,
  SegmentExecutor,
  SilentLogger,
  sgd,
  storeAllPlan,
  TapfitError,
  tensorData,
  tieHostState,
  Trainer,
  type MemoryPlan,
  type MemoryPolicy,
  type MemoryProfile,
  type Segment,
  type SegmentCost,
  type TrainableModel,
} from '../../src';
import { installMemoryGuard } from '../../src/backend';
import { dense, disposeModel, planOf, relativeError, requestOf, residualBlock, residualMlp, reversibleNet, smallCnn } from './models';

const xent = losses.softmaxCrossEntropy;
const mse = losses.meanSquaredError;

/** Measured peak of one executor step above the bytes live before it. */
async function measuredPeak(model: TrainableModel, plan: MemoryPlan, x: tf.Tensor, y: tf.Tensor, loss = xent): Promise<number> {
  const vars = model.segments.flatMap((s) => s.params);
  const start = tf.memory().numBytes;
  const info = await tf.profile(() => {
    const r = new SegmentExecutor().compute(requestOf(model, plan, x, y, loss, { variables: vars }));
    tf.dispose([r.value, ...Object.values(r.grads)]);
  });
  return info.peakBytes - start;
}

const policiesOf = (plan: MemoryPlan): MemoryPolicy[] => plan.segments.map((s) => s.policy);
const mlpSample = (batch: number, d: number) => ({ x: tf.randomNormal([batch, d], 0, 1, 'float32', 3), y: tf.tensor1d(Array.from({ length: batch }, (_, i) => i % 3), 'int32') });

describe('memory: profile, prediction and BudgetPlanner', () => {
  before(async () => {
    await tf.setBackend('cpu');
    tf.env().set('PROD', true);
  });

  describe('profileSegments', () => {
    it("counts what a taped forward keeps: y = relu(x W) keeps x, W (matMul's saved inputs), relu's input and y", async () => {
      const [B, d, h] = [5, 3, 7];
      const w = tf.variable(tf.randomNormal([d, h]));
      const model = segmentModel([{ name: 'layer', params: [w], forward: ([x]) => [tf.relu(tf.matMul(x, w))] }, dense('head', h, 2, 1)]);
      const x = tf.randomNormal([B, d]);
      const before = tf.memory().numTensors;
      const profile = await profileSegments(model, { x }, mse);
      expect(tf.memory().numTensors).to.equal(before);
      const layer = profile.segments[0];
      expect(layer.inputBytes).to.equal(4 * B * d);
      expect(layer.outputBytes).to.equal(4 * B * h);
      expect(layer.storedBytes).to.equal(4 * (B * d + d * h + B * h + B * h));
      expect(layer.inputGradBytes).to.equal(0); // the data batch needs no gradient
      expect(profile.segments[1].inputGradBytes).to.equal(4 * B * h);
      expect(profile.largestGradBytes).to.equal(4 * d * h);
      tf.dispose([x, w]);
      disposeModel(model);
    });

    it('leaves stateful segments as they were, and gives each replay a training forward first', async () => {
      // A running-mean segment: a training forward moves `mean` and records its input;
      // a replay (recomputing) needs that record, as OnlineNorm's does.
      const model = residualMlp(2, 4, 6, 3);
      const mean = tf.variable(tf.zeros([4]), false);
      let last: tf.Tensor | undefined;
      const stateful: Segment = {
        name: 'running-mean',
        params: [mean],
        forward: ([x], ctx) => {
          if (ctx.training && !ctx.recomputing) {
            mean.assign(tf.add(tf.mul(mean, 0.9), tf.mul(tf.mean(x, 0), 0.1)));
            last?.dispose();
            last = tf.keep(tf.clone(mean));
          } else if (ctx.training && !last) throw new Error('replay without a training forward');
          return [tf.sub(x, ctx.recomputing ? last! : mean)];
        },
      };
      const model2 = segmentModel([stateful, ...model.segments]);
      const { x, y } = mlpSample(4, 4);
      const before = mean.dataSync().slice();
      const profile = await profileSegments(model2, { x, y }, xent);
      expect(profile.segments.map((s) => s.name)).to.deep.equal(model2.segments.map((s) => s.name));
      expect(Array.from(mean.dataSync())).to.deep.equal(Array.from(before));
      tf.dispose([x, y, mean, last!]);
      disposeModel(model);
    });

    it('puts back host state tied to a variable (tieHostState): a call counter reads as before', async () => {
      const model = residualMlp(2, 4, 6, 3);
      const mean = tf.variable(tf.zeros([4]), false);
      const counter = { trainingCalls: 5 }; // as OnlineNorm's, which drives its NaN-check cadence
      tieHostState(mean, () => {
        const at = counter.trainingCalls;
        return () => void (counter.trainingCalls = at);
      });
      const counting: Segment = {
        name: 'counting',
        params: [mean],
        forward: ([x], ctx) => {
          if (ctx.training && !ctx.recomputing) {
            counter.trainingCalls++;
            mean.assign(tf.mean(x, 0));
          }
          return [tf.sub(x, mean)];
        },
      };
      const model2 = segmentModel([counting, ...model.segments]);
      const { x, y } = mlpSample(4, 4);
      await profileSegments(model2, { x, y }, xent);
      expect(counter.trainingCalls).to.equal(5);
      tf.dispose([x, y, mean]);
      disposeModel(model);
    });
  });

  describe('predictPeakBytes', () => {
    const cases: [string, () => TrainableModel, () => { x: tf.Tensor; y: tf.Tensor }, typeof xent, (n: string, i: number) => MemoryPolicy][] = [
      ['residual MLP, all store', () => residualMlp(6, 8, 32), () => mlpSample(32, 8), xent, () => 'store'],
      ['residual MLP, all recompute', () => residualMlp(6, 8, 32), () => mlpSample(32, 8), xent, () => 'recompute'],
      ['residual MLP, mixed', () => residualMlp(6, 8, 32), () => mlpSample(32, 8), xent, (_, i) => (i % 3 === 1 ? 'store' : 'recompute')],
      ['small CNN, mixed', () => smallCnn(3, 6, 4), () => ({ x: tf.randomNormal([2, 6, 6, 1]), y: tf.tensor1d([0, 2], 'int32') }), xent, (_, i) => (i % 2 ? 'store' : 'recompute')],
      [
        'reversible net, invert / store / recompute',
        () => reversibleNet(4, 6),
        () => ({ x: tf.randomNormal([8, 12]), y: tf.randomNormal([8, 3]) }),
        mse,
        (n, i) => (n === 'coupling2' ? 'store' : n.startsWith('coupling') || n === 'merge' ? 'invert' : i % 2 ? 'recompute' : 'store'),
      ],
      [
        // Wide enough that the couplings' rebuild sets the peak (one pass: 18 % below inverse + VJP here).
        'reversible net whose couplings rebuild and differentiate in one pass (backward), all invert',
        () => reversibleNet(4, 32, 3, undefined, true),
        () => ({ x: tf.randomNormal([64, 64]), y: tf.randomNormal([64, 3]) }),
        mse,
        (n) => (n.startsWith('coupling') || n === 'merge' ? 'invert' : 'store'),
      ],
    ];
    for (const [label, build, sample, loss, policy] of cases) {
      it(`matches the measured peak: ${label}`, async () => {
        const model = build();
        const { x, y } = sample();
        const profile = await profileSegments(model, { x, y }, loss);
        const plan = planOf(model, policy);
        const predicted = predictPeakBytes(profile, policiesOf(plan));
        const measured = await measuredPeak(model, plan, x, y, loss);
        expect(Math.abs(predicted / measured - 1)).to.be.below(0.01);
        expect(predictPeakBytes(profile, policiesOf(plan), 12345)).to.equal(predicted + 12345);
        tf.dispose([x, y]);
        disposeModel(model);
      });
    }
  });

  describe('BudgetPlanner', () => {
    let model: TrainableModel;
    let x: tf.Tensor;
    let y: tf.Tensor;
    let profile: MemoryProfile;
    let storePeak: number;
    let recomputePeak: number;
    const names = () => model.segments.map((s) => s.name);
    const info = () => ({ model, segmentNames: names(), params: {} });

    before(async () => {
      model = residualMlp(8, 8, 64);
      ({ x, y } = mlpSample(64, 8));
      profile = await profileSegments(model, { x, y }, xent);
      storePeak = predictPeakBytes(profile, names().map(() => 'store'));
      recomputePeak = predictPeakBytes(profile, names().map(() => 'recompute'));
    });
    after(() => {
      tf.dispose([x, y]);
      disposeModel(model);
    });

    it('keeps everything stored when the budget allows it', () => {
      const plan = new BudgetPlanner({ budgetBytes: storePeak, profile }).plan(info());
      expect(policiesOf(plan).every((p) => p === 'store')).to.equal(true);
      expect(plan.predictedPeakBytes).to.equal(storePeak);
      plan.segments.forEach((s, i) => expect(s.predictedBytes).to.equal(profile.segments[i].storedBytes));
    });

    it('recomputes more as the budget shrinks; every plan fits, as predicted and as measured', async () => {
      let previous = -1;
      for (const fraction of [0.9, 0.7, 0.5]) {
        const budget = Math.floor(recomputePeak + fraction * (storePeak - recomputePeak));
        const plan = new BudgetPlanner({ budgetBytes: budget, profile }).plan(info());
        const recomputed = policiesOf(plan).filter((p) => p === 'recompute').length;
        expect(recomputed).to.be.at.least(Math.max(previous, 1));
        previous = recomputed;
        expect(plan.predictedPeakBytes).to.be.at.most(budget);
        expect(await measuredPeak(model, plan, x, y)).to.be.at.most(budget);
        plan.segments.forEach((s, i) => expect(s.predictedBytes).to.equal(s.policy === 'store' ? profile.segments[i].storedBytes : profile.segments[i].inputBytes));
      }
    });

    it('keeps plugin marks (invert, recompute) and counts plugin extraBytes against the budget', () => {
      const rev = reversibleNet(3, 6);
      return (async () => {
        const s = { x: tf.randomNormal([8, 12]), y: tf.randomNormal([8, 3]) };
        const p = await profileSegments(rev, s, mse);
        const base: MemoryPlan = { ...storeAllPlan(rev.segments.map((seg) => seg.name)), extraBytes: [{ source: 'stash', bytes: 4096 }] };
        base.segments[1].policy = 'invert'; // coupling0
        base.segments[3].policy = 'recompute'; // coupling2
        const generous = new BudgetPlanner({ budgetBytes: 1e9, profile: p }).fit(base);
        expect(policiesOf(generous)).to.deep.equal(policiesOf(base));
        expect(generous.extraBytes).to.deep.equal(base.extraBytes);
        expect(generous.predictedPeakBytes).to.equal(predictPeakBytes(p, policiesOf(base)) + 4096);
        expect(base.predictedPeakBytes).to.equal(undefined); // the input plan is not changed
        // A budget just under the plan's peak forces recomputes elsewhere; the marks stay.
        const tight = new BudgetPlanner({ budgetBytes: generous.predictedPeakBytes! - 1, profile: p }).fit(base);
        expect(tight.segments[1].policy).to.equal('invert');
        expect(tight.segments[3].policy).to.equal('recompute');
        expect(policiesOf(tight).filter((q) => q === 'recompute').length).to.be.above(1);
        expect(tight.predictedPeakBytes).to.be.below(generous.predictedPeakBytes!);
        tf.dispose([s.x, s.y]);
        disposeModel(rev);
      })();
    });

    it('recomputes the cheapest segments first (forward time per byte saved)', () => {
      const cost = (name: string, forwardMs: number): SegmentCost => ({
        name,
        inputBytes: 100,
        outputBytes: 100,
        differentiable: true,
        forwardPeakBytes: 300,
        storedBytes: 1000,
        storeForwardPeakBytes: 1200,
        storeBackwardPeakBytes: 1400,
        storeNetBytes: 150,
        vjpPeakBytes: 1500,
        vjpNetBytes: 150,
        inputGradBytes: 100,
        forwardMs,
      });
      const synthetic: MemoryProfile = { batchSize: 2, segments: [cost('slow', 50), cost('cheap', 1), cost('medium', 10)], head: { peakBytes: 200, netBytes: 104, inputGradBytes: 100 }, largestGradBytes: 50 };
      const base = storeAllPlan(['slow', 'cheap', 'medium']);
      // Oracle: among all 8 plans, the one of least recompute time whose predicted peak fits.
      const plans = Array.from({ length: 8 }, (_, m) => [0, 1, 2].map((i): MemoryPolicy => (m & (1 << i) ? 'recompute' : 'store')));
      const cheapestFitting = (budget: number) =>
        plans
          .filter((p) => predictPeakBytes(synthetic, p) <= budget)
          .sort((a, b) => recomputeMs(a) - recomputeMs(b))[0];
      const recomputeMs = (p: MemoryPolicy[]) => p.reduce((t, q, i) => t + (q === 'recompute' ? synthetic.segments[i].forwardMs : 0), 0);
      const peaks = [...new Set(plans.map((p) => predictPeakBytes(synthetic, p)))].sort((a, b) => b - a);
      expect(peaks.length).to.be.above(2);
      for (const budget of peaks) {
        const plan = new BudgetPlanner({ budgetBytes: budget, profile: synthetic }).fit(base);
        expect(policiesOf(plan), `budget ${budget}`).to.deep.equal(cheapestFitting(budget));
        expect(plan.predictedPeakBytes).to.be.at.most(budget);
      }
    });

    it('fails with TAPFIT_E_MEMORY stating the smallest achievable peak when nothing fits', () => {
      const smallest = recomputePeak;
      let err: unknown;
      try {
        new BudgetPlanner({ budgetBytes: smallest - 1, profile }).plan(info());
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
      expect((err as Error).message).to.contain(`smallest predicted peak is ${(smallest / 2 ** 20).toFixed(2)} MiB (${smallest} bytes)`);
      expect((err as Error).message).to.match(/Raise budgetBytes/);
    });

    it('names the segment where the smallest peak is reached', async () => {
      const wide = segmentModel([residualBlock('narrow0', 8, 16, 1), residualBlock('wide', 8, 1024, 11), residualBlock('narrow1', 8, 16, 21), dense('head', 8, 3, 31)]);
      const { x: wx, y: wy } = mlpSample(64, 8);
      const wideProfile = await profileSegments(wide, { x: wx, y: wy }, xent);
      const recompute: MemoryPolicy[] = ['recompute', 'recompute', 'recompute', 'recompute'];
      const at = predictPeak(wideProfile, recompute);
      expect(at).to.deep.include({ segment: 1, phase: 'backward', bytes: predictPeakBytes(wideProfile, recompute) });
      expect(() => new BudgetPlanner({ budgetBytes: at.bytes / 2, profile: wideProfile }).plan({ model: wide, segmentNames: wide.segments.map((s) => s.name), params: {} }))
        .to.throw(TapfitError, /reached during the (forward|backward) of segment 'wide'.*split segment 'wide' into smaller segments/);
      tf.dispose([wx, wy]);
      disposeModel(wide);
    });

    it('rejects bad options and a profile of another model, naming the problem', () => {
      expect(() => new BudgetPlanner({ budgetBytes: -5, profile })).to.throw(TapfitError, /BudgetPlanner.*budgetBytes/);
      expect(() => new BudgetPlanner({ budgetBytes: 1e6 } as never)).to.throw(TapfitError, /BudgetPlanner.*profile/);
      expect(() => new BudgetPlanner({ budgetBytes: 1e6, profile }).fit(storeAllPlan(['a', 'b']))).to.throw(TapfitError, /profile measured segments/);
      const plan = storeAllPlan(names());
      plan.segments[2].policy = 'invert';
      expect(() => new BudgetPlanner({ budgetBytes: 1e9, profile }).fit(plan)).to.throw(TapfitError, /segment 'block2' is planned 'invert' but has no inverse/);
    });
  });

  describe('memoryBudget plugin in a Trainer', () => {
    const data = () => {
      const x = tf.randomNormal([32, 8], 0, 1, 'float32', 21);
      const y = tf.tensor1d(Array.from({ length: 32 }, (_, i) => i % 3), 'int32');
      return tensorData(x, y);
    };

    async function train(plugins: (b: TrainableModel) => import('../../src').PluginSpec[]) {
      const model = residualMlp(6, 8, 32, 3, 5);
      const d = data();
      const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05 }), plugins: plugins(model), logger: new SilentLogger() });
      await trainer.setup();
      const description = trainer.describe({ print: false });
      await trainer.fit(d, { epochs: 2, batchSize: 16, shuffle: false });
      const weights = model.segments.flatMap((s) => s.params).map((v) => Float64Array.from(v.dataSync()));
      trainer.dispose();
      d.dispose();
      disposeModel(model);
      return { description, weights };
    }

    it('plans within the budget after other plugins, shows it in describe(), and trains like plain autodiff', async () => {
      const sample = mlpSample(16, 8);
      // Budget: between all-recompute and all-store for this model and batch.
      const probe = residualMlp(6, 8, 32, 3, 5);
      const profile = await profileSegments(probe, sample, xent);
      const n = probe.segments.length;
      const budget = Math.floor(
        (predictPeakBytes(profile, new Array(n).fill('store')) + predictPeakBytes(profile, new Array(n).fill('recompute'))) / 2,
      );
      disposeModel(probe);
      const marker = { name: 'marker', core: '^0.1.0', apply: (api: import('../../src').PluginApi) => api.hooks.planMemory.tap('marker', (p) => ({ ...p, extraBytes: [...p.extraBytes, { source: 'marker', bytes: 1000 }] })) };

      const ref = await train(() => []);
      const got = await train(() => [marker, memoryBudget({ budgetBytes: budget, sample })]);
      const plan = got.description.memoryPlan!;
      expect(plan.predictedPeakBytes).to.be.at.most(budget);
      expect(plan.extraBytes).to.deep.equal([{ source: 'marker', bytes: 1000 }]);
      expect(plan.segments.some((s) => s.policy === 'recompute')).to.equal(true);
      expect(plan.segments.every((s) => typeof s.predictedBytes === 'number')).to.equal(true);
      expect(got.description.hooks.planMemory).to.deep.equal(['marker', 'memory-budget']);
      got.weights.forEach((w, i) => expect(relativeError(w, ref.weights[i])).to.be.below(1e-5));
      tf.dispose([sample.x, sample.y]);
    });

    it('an impossible budget fails setup with the memory error as the cause', async () => {
      const sample = mlpSample(16, 8);
      const model = residualMlp(2, 8, 32);
      const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05 }), plugins: [memoryBudget({ budgetBytes: 10, sample })], logger: new SilentLogger() });
      let err: unknown;
      await trainer.setup().catch((e) => (err = e));
      expect(err).to.be.instanceOf(TapfitError);
      expect(((err as TapfitError).cause as TapfitError).code).to.equal('TAPFIT_E_MEMORY');
      expect((err as Error).message).to.match(/memory-budget.*smallest predicted peak/);
      tf.dispose([sample.x, sample.y]);
      disposeModel(model);
    });

    it('a sample whose profiling the memory guard refuses fails setup with TAPFIT_E_MEMORY as the cause, at any point, leaving nothing behind (no TypeError, no unhandled rejection)', async () => {
      const sample = mlpSample(64, 8);
      const model = residualMlp(2, 8, 32);
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      const tensors = tf.memory().numTensors;
      let refusals = 0;
      try {
        // The guard counts what is allocated once it is installed: budgets from a few activations of the sample up to what profiling needs.
        for (let budget = 2048; ; budget += 2048) {
          const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05 }), plugins: [memoryBudget({ budgetBytes: 1e9, sample })], logger: new SilentLogger() });
          const guard = installMemoryGuard(budget, 'cpu');
          let err: TapfitError | undefined;
          try {
            await trainer.setup().catch((e: TapfitError) => (err = e));
            await new Promise((resolve) => setTimeout(resolve, 20));
          } finally {
            guard.remove();
            trainer.dispose();
          }
          expect(unhandled, `budget ${budget}`).to.deep.equal([]);
          expect(tf.memory().numTensors, `tensors left after a setup under a budget of ${budget}`).to.equal(tensors);
          if (!err) break;
          refusals++;
          expect(err.code, err.message).to.equal('TAPFIT_E_PLUGIN_FAILED');
          expect((err.cause as TapfitError).code, String((err.cause as Error).message)).to.equal('TAPFIT_E_MEMORY');
          expect(err.message).to.match(/memory-budget.*memory budget exceeded on backend 'cpu'/);
        }
      } finally {
        process.off('unhandledRejection', onUnhandled);
      }
      expect(refusals).to.be.at.least(10);
      tf.dispose([sample.x, sample.y]);
      disposeModel(model);
    });

    it('rejects bad options when the plugin is created', () => {
      const x = tf.zeros([1]);
      expect(() => memoryBudget({ budgetBytes: 0, sample: { x } })).to.throw(TapfitError, /memoryBudget.*budgetBytes/);
      x.dispose();
      expect(() => memoryBudget({ budgetBytes: 100 } as never)).to.throw(TapfitError, /memoryBudget.*sample/);
    });
  });
});
