import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, memoryBudget, modelVariables, SegmentExecutor, segmentModel, sgd, SilentLogger, TapfitError, tensorData, Trainer, trainableVariables, type Segment, type TrainableModel } from '@tapfit/core';
import { blobData, describeConformance, testTrainer } from '@tapfit/core/testing';
import { AssertionError, expect } from 'chai';
import { coupling, reversiblePlan, revBiFPN, reversibleUNet3d, revsilo, tapfitPlugin, transform, type Transform } from '../src';
import { expectAllclose, expectSameGradients, invertPlan, setBackend, stepGradients, training } from './helpers';

let uid = 0;
/** tanh(x W) with seeded weights (F or G of a coupling). */
function denseTransform(name: string, d: number, seed: number): Transform {
  const w = tf.variable(tf.randomNormal([d, d], 0, 0.5, 'float32', seed), true, `${name}_${uid++}`);
  return transform(name, (x) => tf.tanh(tf.matMul(x, w)), [w]);
}

function denseSegment(name: string, din: number, dout: number, seed: number): Segment {
  const w = tf.variable(tf.randomNormal([din, dout], 0, 1 / Math.sqrt(din), 'float32', seed), true, `${name}_${uid++}`);
  return { name, params: [w], forward: ([x]) => [tf.matMul(x, w)] };
}

/** The kit's blob data (4 features, 3 classes) through: lift 4 -> 8, three couplings, dense head. */
function couplingNet(): TrainableModel {
  const blocks = [0, 1, 2].map((i) => coupling({ name: `coupling${i}`, f: denseTransform(`F${i}`, 4, 10 + i), g: denseTransform(`G${i}`, 4, 20 + i) }));
  return segmentModel([denseSegment('lift', 4, 8, 1), ...blocks, denseSegment('head', 8, 3, 2)], { inputShape: [4], outputShape: [3] });
}

/** The same network with nothing invertible (plain autodiff, everything stored). */
function storedNet(): TrainableModel {
  const m = couplingNet();
  return segmentModel(m.segments.map((s) => ({ name: s.name, params: s.params, forward: (xs, ctx) => s.forward(xs, ctx) })), { inputShape: [4], outputShape: [3] });
}

describeConformance({
  plugin: () => revsilo(),
  trainer: () => ({ model: couplingNet() }),
  twin: () => ({ model: storedNet() }), // reversible training equals stored training
  twinTolerance: 1e-4, // rebuilt inputs differ from stored ones by float32 rounding
});

const tinyBiFPN = (options = {}) => revBiFPN({ width: 0.25, streams: 3, extensions: 1, inputSize: 32, classes: 3, dropout: 0, ...options });
const images = (n: number, seed: number) => {
  const x = tf.randomNormal([n, 32, 32, 3], 0, 1, 'float32', seed);
  const y = tf.tensor1d(Array.from({ length: n }, (_, i) => i % 3), 'int32');
  return { x, y };
};

describe('revsilo plugin', () => {
  setBackend('cpu');

  it('plans every segment with an inverse "invert" and describe() shows which', async () => {
    const lines: string[] = [];
    const trainer = testTrainer({ model: couplingNet(), plugins: [revsilo()], logger: { info: (s) => lines.push(s), warn: (s) => lines.push(s) } });
    await trainer.setup();
    const d = trainer.describe({ print: false });
    expect(d.memoryPlan!.segments.map((s) => `${s.name}:${s.policy}`)).to.deep.equal(['lift:store', 'coupling0:invert', 'coupling1:invert', 'coupling2:invert', 'head:store']);
    trainer.describe();
    expect(lines.join('\n')).to.match(/coupling0 +invert/).and.match(/revsilo: planning 3 of 5 segments 'invert'/);
    trainer.dispose();
  });

  it("composes with memoryBudget: the planner keeps the 'invert' marks, plans the rest, and the step fits the budget", async () => {
    const model = tinyBiFPN();
    const { x, y } = images(4, 1);
    const budget = memoryBudget({ budgetBytes: 64 * 2 ** 20, sample: { x, y } });
    const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05 }), plugins: [revsilo(), budget], logger: new SilentLogger() });
    await trainer.setup();
    const plan = trainer.describe({ print: false }).memoryPlan!;
    const reversible = model.segments.filter((s) => s.inverse).map((s) => s.name);
    expect(plan.segments.filter((s) => s.policy === 'invert').map((s) => s.name)).to.deep.equal(reversible);
    expect(plan.predictedPeakBytes).to.be.below(64 * 2 ** 20);
    trainer.dispose();
    // A budget below one unit's working set cannot be met: the error names where the peak is.
    const sample = blobData(8);
    const tight = testTrainer({ model: couplingNet(), plugins: [revsilo(), memoryBudget({ budgetBytes: 256, sample: { x: (sample as unknown as { x: tf.Tensor }).x } })] });
    let err: unknown;
    await tight.setup().catch((e) => (err = e));
    const cause = (err as { cause?: TapfitError }).cause;
    expect(cause?.code).to.equal(ErrorCodes.MEMORY);
    expect(cause?.message).to.match(/reached during the (forward|backward) of (segment '[a-z0-9]+'|the loss)/);
    tight.dispose();
    sample.dispose();
    model.dispose();
    tf.dispose([x, y]);
  });

  it('trains like the stored twin: same losses, weights and batch-norm statistics (moved once per step)', async () => {
    const run = async (reversible: boolean) => {
      const model = tinyBiFPN({ seed: 3 });
      const data = images(8, 2);
      const losses: number[] = [];
      const recorder = { name: 'loss-recorder', core: '*', apply: ({ hooks }: { hooks: { batchEnd: { tap(o: string, f: (i: { loss(): number }) => void): void } } }) => hooks.batchEnd.tap('loss-recorder', (i) => void losses.push(i.loss())) };
      const trainer = new Trainer({
        model: reversible ? model : model.stored(),
        loss: 'softmaxCrossEntropy',
        optimizer: sgd({ lr: 0.05, momentum: 0.9 }),
        plugins: reversible ? [revsilo(), recorder] : [recorder],
        logger: new SilentLogger(),
      });
      await trainer.fit(tensorData(data.x, data.y), { epochs: 2, batchSize: 4, shuffle: false });
      const values = modelVariables(model).map((v) => v.dataSync().slice());
      const names = modelVariables(model).map((v) => v.name.replace(/_\d+$/, ''));
      trainer.dispose();
      model.dispose();
      return { losses, values, names };
    };
    const rev = await run(true);
    const twin = await run(false);
    expect(rev.losses.length).to.equal(4);
    expectAllclose(rev.losses, twin.losses, 1e-5, 1e-7, 'losses');
    const stats = rev.names.map((n, i) => [n, i] as const).filter(([n]) => /moving_(mean|variance)/.test(n));
    expect(stats.length).to.be.above(10);
    for (const [n, i] of stats) expectAllclose(rev.values[i], twin.values[i], 1e-4, 1e-6, n);
    rev.values.forEach((v, i) => expectAllclose(v, twin.values[i], 1e-3, 1e-5, rev.names[i]));
  });

  it('functional twin: the builders with SegmentExecutor and reversiblePlan directly give the same training', async () => {
    const data = blobData(32);
    const hooked = testTrainer({ model: couplingNet(), optimizer: sgd({ lr: 0.1 }), plugins: [revsilo()] });
    await hooked.fit(data, { epochs: 1, batchSize: 8, shuffle: false });
    const model = couplingNet();
    const plan = reversiblePlan(model);
    const executor = new SegmentExecutor();
    const variables = trainableVariables(model);
    const xs = (data as unknown as { x: tf.Tensor; y: tf.Tensor }).x;
    const ys = (data as unknown as { x: tf.Tensor; y: tf.Tensor }).y;
    for (let b = 0; b < 4; b++) {
      tf.tidy(() => {
        const x = xs.slice(8 * b, 8);
        const y = tf.oneHot(ys.slice(8 * b, 8) as tf.Tensor1D, 3).toFloat();
        const r = executor.compute({ x, y, segments: model.segments, ctx: { ...training, step: b }, variables, plan, loss: (t, p) => tf.losses.softmaxCrossEntropy(t, p) as tf.Scalar });
        for (const v of variables) v.assign(tf.sub(v, tf.mul(r.grads[v.name], 0.1)));
      });
    }
    modelVariables(model).forEach((v, i) => expectAllclose(v, modelVariables(hooked.model)[i], 1e-5, 1e-6, v.name));
    hooked.dispose();
    data.dispose();
  });

  describe('a float32 segment before an exact one (the exact one rounds what it hands back)', () => {
    /** lift (activations scaled by `scale`) -> couplings with the given fraction bits -> head. */
    const chain = (bits: (number | undefined)[], scale = 0.01) => {
      const lift = denseSegment('lift', 4, 8, 1);
      lift.params[0].assign(tf.mul(lift.params[0], scale));
      const blocks = bits.map((fixedPoint, i) => coupling({ name: `c${i}`, f: denseTransform(`F${i}`, 4, 40 + i), g: denseTransform(`G${i}`, 4, 50 + i), fixedPoint }));
      const segments = [lift, ...blocks, denseSegment('head', 8, 3, 2)];
      const model = segmentModel(segments, { inputShape: [4], outputShape: [3] });
      const stored = segmentModel(segments.map((s) => ({ name: s.name, params: s.params, forward: (xs: tf.Tensor[], ctx: typeof training) => s.forward(xs, ctx) })), { inputShape: [4], outputShape: [3] });
      return { model, stored };
    };
    // Scaled so the small activations' gradients stand well above the comparison's absolute tolerance.
    const mse = (t: tf.Tensor, p: tf.Tensor) => tf.mul(tf.losses.meanSquaredError(t, p), 1e4) as tf.Scalar;
    const policies = (model: TrainableModel) => reversiblePlan(model).segments.map((s) => s.policy);

    it("plans the float32 one 'recompute', so the executor's gradients equal autodiff of the stored twin", () => {
      const { model, stored } = chain([0, 0, 16]);
      const x = tf.randomNormal([16, 4], 0, 1, 'float32', 3);
      const y = tf.randomNormal([16, 3], 0, 1, 'float32', 4);
      const want = stepGradients(stored, x, y, mse, 'autodiff');
      expectSameGradients(stepGradients(model, x, y, mse, reversiblePlan(model)).grads, want.grads);
      expect(policies(model)).to.deep.equal(['store', 'invert', 'recompute', 'invert', 'store']);
      // What the plan prevents: inverted, c1 rebuilds its input from the rounded q(y) c2 hands back.
      expect(() => expectSameGradients(stepGradients(model, x, y, mse, invertPlan(model)).grads, want.grads)).to.throw(AssertionError);
    });

    it('keeps invert where the output is already on the next grid: exact chains, the U-Net (skips carried), a parameterless stem', () => {
      expect(policies(chain([16, 16, 16]).model)).to.deep.equal(['store', 'invert', 'invert', 'invert', 'store']);
      expect(policies(chain([0, 0, 0]).model)).to.deep.equal(['store', 'invert', 'invert', 'invert', 'store']);
      // A finer grid (20 bits) is not on a coarser one (16).
      expect(policies(chain([20, 16]).model)).to.deep.equal(['store', 'recompute', 'invert', 'store']);
      const unet = reversibleUNet3d({ levels: 2, blocksPerLevel: 3, baseChannels: 4, expandRatio: 2, name: 'handoff_unet' });
      expect(reversiblePlan(unet).segments.filter((s) => s.policy !== 'store').every((s) => s.policy === 'invert')).to.equal(true);
      const bifpn = tinyBiFPN({ name: 'handoff_bifpn' });
      expect(reversiblePlan(bifpn).segments.filter((s) => s.policy === 'invert').map((s) => s.name)).to.deep.equal(bifpn.segments.filter((s) => s.inverse).map((s) => s.name));
      unet.dispose();
      bifpn.dispose();
    });

    it("the plugin says which segments it planned 'recompute' and why", async () => {
      const lines: string[] = [];
      const trainer = testTrainer({ model: chain([0, 16]).model, plugins: [revsilo()], logger: { info: (s) => lines.push(s), warn: (s) => lines.push(s) } });
      await trainer.setup();
      expect(trainer.describe({ print: false }).memoryPlan!.segments.map((s) => s.policy)).to.deep.equal(['store', 'recompute', 'invert', 'store']);
      expect(lines.join('\n')).to.match(/c0 'recompute' instead: the exact segment after each rounds its output/);
      trainer.dispose();
    });
  });

  describe('checkReconstruction catches a transform that does not replay', () => {
    // F's dropout draws from the global RNG stream: every call a new mask, so the rebuild is wrong.
    const leaky = (fixedPoint?: number) => {
      const f = denseTransform('leakyF', 4, 31);
      const bad = transform('leakyF', (x, ctx) => (ctx.training ? tf.mul(f.apply(x, ctx), tf.cast(tf.greater(tf.randomUniform(x.shape), 0.5), 'float32')) : f.apply(x, ctx)), f.params);
      return segmentModel([denseSegment('lift', 4, 8, 1), coupling({ name: 'leaky-coupling', f: bad, g: denseTransform('G', 4, 32), fixedPoint }), denseSegment('head', 8, 3, 2)], { inputShape: [4] });
    };

    it('fails the step naming the segment when switched on (input rebuilt, or held and the forward re-run)', async () => {
      for (const [rebuilt, what] of [[true, 'rebuilt input'], [false, 'recomputed output']] as const) {
        const data = blobData(16);
        const model = leaky();
        // Behind another coupling its input is rebuilt; behind 'lift' (stored) it is held and its forward re-run.
        const segments = rebuilt ? [model.segments[0], coupling({ name: 'before', f: denseTransform('F', 4, 33), g: denseTransform('G', 4, 34) }), ...model.segments.slice(1)] : model.segments;
        const trainer = testTrainer({ model: segmentModel([...segments], { inputShape: [4] }), plugins: [revsilo({ checkReconstruction: true })] });
        let err: unknown;
        await trainer.fit(data, { epochs: 1, batchSize: 8 }).catch((e) => (err = e));
        expect(err).to.be.instanceOf(TapfitError);
        expect((err as Error).message).to.match(new RegExp(`segment 'leaky-coupling' gave a ${what} off by .*replayedUniform`));
        trainer.dispose();
        data.dispose();
      }
    });

    it('compares an exact segment with its rounded input: a default (exact) RevBiFPN passes a tight tolerance, a non-replaying exact coupling fails', async () => {
      const model = tinyBiFPN({ name: 'checked_exact' });
      const { x, y } = images(4, 6);
      const tight = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.01 }), plugins: [revsilo({ checkReconstruction: { tolerance: 1e-9 } })], logger: new SilentLogger() });
      await tight.fit(tensorData(tf.mul(x, 0.3), y), { epochs: 1, batchSize: 4 }); // inputs off the 2^-16 grid
      tight.dispose();
      model.dispose();
      const data = blobData(16);
      const bad = leaky(16);
      const trainer = testTrainer({ model: segmentModel([bad.segments[0], coupling({ name: 'before', f: denseTransform('F', 4, 33), g: denseTransform('G', 4, 34), fixedPoint: 16 }), ...bad.segments.slice(1)], { inputShape: [4] }), plugins: [revsilo({ checkReconstruction: { tolerance: 1e-9 } })] });
      let err: unknown;
      await trainer.fit(data, { epochs: 1, batchSize: 8 }).catch((e) => (err = e));
      expect((err as Error).message).to.match(/segment 'leaky-coupling' gave a rebuilt input off by/);
      trainer.dispose();
      data.dispose();
    });

    it('passes a replaying model and trains exactly as without the check', async () => {
      const data = blobData(16);
      const checked = testTrainer({ model: couplingNet(), plugins: [revsilo({ checkReconstruction: { tolerance: 1e-4 } })] });
      const plain = testTrainer({ model: couplingNet(), plugins: [revsilo()] });
      await checked.fit(data, { epochs: 2, batchSize: 8, shuffle: false });
      await plain.fit(data, { epochs: 2, batchSize: 8, shuffle: false });
      modelVariables(checked.model).forEach((v, i) => expect(Array.from(v.dataSync())).to.deep.equal(Array.from(modelVariables(plain.model)[i].dataSync())));
      checked.dispose();
      plain.dispose();
      data.dispose();
    });
  });

  describe('bad input', () => {
    it('refuses bad options at creation, naming the option and the fix (typos inside checkReconstruction too)', () => {
      const cases: [unknown, RegExp][] = [
        [{ segment: 'x' }, /revsilo: unknown option\(s\) 'segment' \(did you mean 'segments'\?\)/],
        [{ segments: 5 }, /revsilo: option 'segments' must be a list of segment names, a RegExp or a function of the name/],
        [{ segments: ['a', 3] }, /option 'segments' must be a list of segment names/],
        [{ checkReconstruction: { tolerance: -1 } }, /option 'checkReconstruction.tolerance' must be > 0 \(got -1\)/],
        [{ checkReconstruction: null }, /option 'checkReconstruction' must be true, false or \{ tolerance > 0 \}.*\(got null\)/],
        [{ checkReconstruction: 'yes' }, /option 'checkReconstruction' must be true, false or \{ tolerance > 0 \}/],
        [{ checkReconstruction: { tolerence: 1e-7 } }, /unknown option\(s\) 'checkReconstruction.tolerence' \(did you mean 'tolerance'\?\)/],
        [{ checkReconstruction: { tolerance: 1e-7, extra: 1 } }, /unknown option\(s\) 'checkReconstruction.extra'/],
        [5, /revsilo: options must be an object, e.g. revsilo\(\{\}\)/],
      ];
      for (const [options, message] of cases) {
        let err: unknown;
        try {
          revsilo(options as never);
        } catch (e) {
          err = e;
        }
        expect(err, JSON.stringify(options)).to.be.instanceOf(TapfitError);
        expect((err as TapfitError).code).to.equal(ErrorCodes.CONFIG);
        expect((err as Error).message).to.match(message);
      }
      // Valid forms, and explicit undefined, are accepted.
      for (const options of [{}, { segments: ['a'] }, { segments: /silo/ }, { segments: (n: string) => n !== 'x' }, { checkReconstruction: true }, { checkReconstruction: {} }, { segments: undefined, checkReconstruction: undefined }]) {
        expect(() => revsilo(options)).to.not.throw();
      }
    });

    it('a selected segment without inverse, an unknown name, or nothing to invert fails setup naming it', async () => {
      const cases: [Parameters<typeof revsilo>[0], TrainableModel, RegExp][] = [
        [{ segments: ['lift'] }, couplingNet(), /segment 'lift' is selected for 'invert' but has no inverse/],
        [{ segments: ['nope'] }, couplingNet(), /option 'segments' names 'nope', which the model does not have/],
        [{}, storedNet(), /no segment of the model has an inverse/],
      ];
      for (const [options, model, message] of cases) {
        const trainer = testTrainer({ model, plugins: [revsilo(options)] });
        let err: unknown;
        await trainer.setup().catch((e) => (err = e));
        expect(((err as { cause?: Error }).cause ?? (err as Error)).message).to.match(message);
        trainer.dispose();
      }
    });

    it('is what config files load (tapfitPlugin)', () => {
      expect(tapfitPlugin).to.equal(revsilo);
    });
  });
});
