import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { chain, momentum, nesterov, scaleByLearningRate, sgd, SilentLogger, Trainer, type OptimizerSpec, type TapfitPlugin } from '@tapfit/core';
import { adaptiveBrakingPlugin, brakesPlugin, delayedGradients, tapfitPlugin, withAdaptiveBraking, type AdaptiveBrakingState } from '../src';
import { blobs, errorOf, tinyMlp, trajectory, useBackend } from './helpers';

const lr = 0.05;

function trainer(optimizer: OptimizerSpec, plugins: TapfitPlugin[] = [], seed = 1) {
  return new Trainer({ model: tinyMlp(seed), loss: 'softmaxCrossEntropy', optimizer, metrics: ['accuracy'], plugins, logger: new SilentLogger() });
}

async function setupError(t: Trainer): Promise<Error & { code?: string }> {
  let err: unknown;
  await t.setup().catch((e) => (err = e));
  expect(err, 'setup should fail').to.be.instanceOf(Error);
  return err as Error & { code?: string };
}

describe('adaptiveBrakingPlugin', () => {
  useBackend('cpu');

  it("replaces the chain's momentum member; the state is at optimizerState.momentum", async () => {
    const data = blobs(96);
    const t = trainer(sgd({ lr: 0.1, momentum: 0.9 }), [adaptiveBrakingPlugin({ rho: 2 })]);
    const before = await t.evaluate(data);
    await t.fit(data, { epochs: 6, batchSize: 16 });
    const after = await t.evaluate(data);
    const d = t.describe({ print: false });
    expect(d.stepTransforms).to.deep.equal(['momentum', 'lr']);
    // The member keeps its name; describe says what it is now and who put it there.
    expect(d.updateMembers).to.deep.equal([{ name: 'momentum', kind: 'adaptive-braking', suppliedBy: ['adaptive-braking'] }, { name: 'lr' }]);
    const state = t.optimizerState!.momentum as AdaptiveBrakingState;
    expect(state.count).to.equal(36);
    expect(Object.keys(state.velocity)).to.deep.equal(Object.keys(t.variables));
    const scales = Object.values(state.scale).map((s) => s.dataSync()[0]);
    expect(scales.every((s) => s >= -1 && s <= 3)).to.equal(true);
    expect(scales.some((s) => Math.abs(s - 1) > 1e-3)).to.equal(true); // it braked
    expect(after.loss).to.be.lessThan(before.loss * 0.5);
    expect(after.acc).to.be.greaterThan(0.9);
    t.dispose();
    data.dispose();
  });

  it("works on the chain an optimizer name gives ('momentum'), and says what is missing on one without momentum ('adam')", async () => {
    const data = blobs(48);
    const t = trainer('momentum', [adaptiveBrakingPlugin({ rho: 2 })]);
    await t.fit(data, { epochs: 2, batchSize: 16 });
    expect(t.describe({ print: false }).stepTransforms).to.deep.equal(['momentum', 'lr']);
    expect((t.optimizerState!.momentum as AdaptiveBrakingState).count).to.equal(6);
    const err = await setupError(trainer('adam', [adaptiveBrakingPlugin()]));
    expect(err.message).to.match(/no 'momentum' member to replace \(members: 'adam', 'lr'\)/);
    t.dispose();
    data.dispose();
  });

  it('rho = 0 trains to bit-identical weights as plain sgd momentum', async () => {
    const weights = async (plugins: TapfitPlugin[]) => {
      const data = blobs(48);
      const t = trainer(sgd({ lr: 0.1, momentum: 0.9, weightDecay: 1e-3 }), plugins);
      await t.fit(data, { epochs: 3, batchSize: 8 });
      const w = Object.values(t.variables).map((v) => Array.from(v.dataSync()));
      t.dispose();
      data.dispose();
      return w;
    };
    const plain = await weights([]);
    expect(await weights([adaptiveBrakingPlugin({ rho: 0 })])).to.deep.equal(plain);
    expect(await weights([adaptiveBrakingPlugin({ rho: 2 })])).to.not.deep.equal(plain);
  });

  it('leaves no tensors behind over a fit', async () => {
    const data = blobs(64);
    const t = trainer(sgd({ lr: 0.1, momentum: 0.9 }), [adaptiveBrakingPlugin({ granularity: 'global' })]);
    await t.setup();
    const before = tf.memory().numTensors;
    await t.fit(data, { epochs: 5, batchSize: 16 });
    expect(tf.memory().numTensors).to.equal(before);
    t.dispose();
    data.dispose();
  });

  describe('momentum m', () => {
    it("is taken from the optimizer's momentum member (its hyperparams)", () => {
      const mOf = (m: number) => (withAdaptiveBraking([momentum({ momentum: m })])[0].hyperparams as { momentum: number }).momentum;
      expect(mOf(0.7)).to.equal(0.7);
      expect(mOf(0)).to.equal(0);
      // and used: with rho 0 the braked chain follows sgd momentum 0.7 bit for bit
      const braked = withAdaptiveBraking(chain(momentum({ momentum: 0.7 }), scaleByLearningRate(lr)), { rho: 0 });
      expect(trajectory(braked, 20)).to.deep.equal(trajectory(chain(momentum({ momentum: 0.7 }), scaleByLearningRate(lr)), 20));
    });

    it('refuses Nesterov and dampening, naming the fix', () => {
      expect(errorOf(() => withAdaptiveBraking([nesterov({ momentum: 0.9 })])).message).to.match(
        /cannot take the momentum from chain member 'momentum': it is Nesterov momentum.*without nesterov or dampening, or pass the plugin's `momentum` option/,
      );
      expect(errorOf(() => withAdaptiveBraking([momentum({ momentum: 0.9, dampening: 0.5 })])).message).to.match(/it damps the gradient \(dampening 0.5/);
      const custom = { name: 'momentum', init: () => ({}), update: (u: Record<string, tf.Tensor>, s: Record<string, never>) => [u, s] as [Record<string, tf.Tensor>, Record<string, never>] };
      expect(errorOf(() => withAdaptiveBraking([custom])).message).to.match(/does not expose a numeric `momentum` hyperparameter/);
    });

    it("refuses a momentum member that is already a delay compensation (the pipeline's Spike Compensation), and marks its own", () => {
      const sc = { ...momentum({ momentum: 0.9 }), hyperparams: { momentum: 0.9, compensation: 'spike' } };
      expect(errorOf(() => withAdaptiveBraking([sc])).message).to.match(
        /chain member 'momentum' is already a delay compensation \('spike', e\.g\. the pipeline's Spike Compensation\).*use one/,
      );
      // Also when `momentum` is given, so nothing is read from the member: it would still replace the compensation.
      expect(errorOf(() => withAdaptiveBraking([sc], { momentum: 0.9 })).message).to.match(/chain member 'momentum' is already a delay compensation \('spike'/);
      const braked = withAdaptiveBraking([momentum({ momentum: 0.9 })]);
      expect(braked[0].hyperparams!.compensation).to.equal('adaptive-braking');
      expect(errorOf(() => withAdaptiveBraking(braked)).message).to.match(/already a delay compensation \('adaptive-braking'/);
    });

    it('an explicit `momentum` option is used as given (no probing)', () => {
      const braked = withAdaptiveBraking(chain(nesterov({ momentum: 0.9 }), scaleByLearningRate(lr)), { rho: 0, momentum: 0.5 });
      expect(trajectory(braked, 15)).to.deep.equal(trajectory(chain(momentum({ momentum: 0.5 }), scaleByLearningRate(lr)), 15));
    });
  });

  describe('functional twin withAdaptiveBraking', () => {
    it('keeps the chain, its name and the member name; reaches into nested chains by path', () => {
      const outer = chain('outer', sgd({ lr, momentum: 0.9 }));
      const braked = withAdaptiveBraking(outer, { target: 'sgd/momentum' });
      expect(braked.name).to.equal('outer');
      const inner = braked.transforms[0] as ReturnType<typeof sgd>;
      expect(inner.transforms.map((t) => t.name)).to.deep.equal(['momentum', 'lr']);
      tf.tidy(() => {
        const state = braked.init({ w: tf.zeros([2]) }) as { sgd: { momentum: AdaptiveBrakingState } };
        expect(Object.keys(state.sgd.momentum)).to.deep.equal(['count', 'velocity', 'scale']);
      });
    });
  });

  describe('errors', () => {
    it('a chain without momentum: names the members and the fix', async () => {
      const err = await setupError(trainer(sgd({ lr }), [adaptiveBrakingPlugin()]));
      expect(err.message).to.match(/plugin 'adaptive-braking' failed in hook 'stepTransforms'/);
      expect(err.message).to.match(/the update chain has no 'momentum' member to replace \(members: 'lr'\).*e\.g\. sgd\(\{ lr, momentum: 0\.9 \}\)/);
      expect(errorOf(() => withAdaptiveBraking(sgd({ lr }))).code).to.equal('TAPFIT_E_CONFIG');
    });

    it('a black-box tf.train optimizer fails at setup with TAPFIT_E_NEEDS_CHAIN', async () => {
      for (const plugin of [adaptiveBrakingPlugin(), tapfitPlugin({ delay: 2 })]) {
        const err = await setupError(trainer(tf.train.momentum(lr, 0.9), [plugin]));
        expect(err.code).to.equal('TAPFIT_E_NEEDS_CHAIN');
        expect(err.message).to.match(/sgd\(\{ lr, momentum \}\)/);
      }
    });

    it('weight decay in the optimizer and in the plugin is refused (it would decay twice)', async () => {
      const err = await setupError(trainer(sgd({ lr, momentum: 0.9, weightDecay: 1e-4 }), [adaptiveBrakingPlugin({ weightDecay: 1e-4 })]));
      expect(err.message).to.match(/would decay twice\. Build the optimizer without weightDecay and pass weightDecay to the plugin instead/);
      const err2 = errorOf(() => withAdaptiveBraking(sgd({ lr, momentum: 0.9, weightDecay: 1e-4 }), { applyToWeightDecay: false }));
      expect(err2.message).to.match(/applyToWeightDecay: false cannot separate it from the gradient/);
    });

    it('bad options fail when the plugin is created, naming the option', () => {
      expect(errorOf(() => adaptiveBrakingPlugin({ rho: 3 })).message).to.match(/^adaptive-braking: option 'rho' must be in \[0, 2\] \(got 3\)/);
      expect(errorOf(() => adaptiveBrakingPlugin({ momentum: 1.5 })).message).to.match(/option 'momentum' must be in \[0, 1\)/);
      expect(errorOf(() => adaptiveBrakingPlugin({ rh0: 1 } as never)).message).to.match(/unknown option\(s\) 'rh0'/);
      expect(errorOf(() => tapfitPlugin({ braking: false, rho: 1 })).message).to.match(/braking is false, so option\(s\) 'rho' would be ignored/);
    });

    it("the package's plugin names a misspelt option against all of its keys (delay and braking included), and a missing delay the number it needs", () => {
      expect(errorOf(() => tapfitPlugin({ dealy: 8 } as never)).message).to.equal("brakes: unknown option(s) 'dealy' (did you mean 'delay'?).");
      expect(errorOf(() => tapfitPlugin({ braking: false, dealy: 8 } as never)).message).to.equal("brakes: unknown option(s) 'dealy' (did you mean 'delay'?).");
      expect(errorOf(() => tapfitPlugin({ brakng: true } as never)).message).to.match(/did you mean 'braking'/);
      expect(errorOf(() => delayedGradients({} as never)).message).to.match(/^delayed-gradients: option 'delay' must be an integer number of steps >= 0 \(got undefined\)/);
    });
  });

  describe('checkpoints: its state is the chain member it replaced (momentum)', () => {
    const warnings: string[] = [];
    const options = (plugins: TapfitPlugin[]) => ({
      model: tinyMlp(3),
      loss: 'softmaxCrossEntropy' as const,
      optimizer: sgd({ lr, momentum: 0.9 }),
      plugins,
      logger: { info() {}, warn: (m: string) => warnings.push(m) },
    });
    async function saved(plugins: TapfitPlugin[]): Promise<{ dir: string; weights: number[][] }> {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brakes-ckpt-'));
      const data = blobs(16);
      const t = new Trainer(options(plugins));
      await t.fit(data, { epochs: 1, batchSize: 8 });
      await t.save(dir);
      const weights = Object.values(t.variables).map((v) => Array.from(v.dataSync()));
      t.dispose();
      data.dispose();
      warnings.length = 0;
      return { dir, weights };
    }
    const refused = (p: Promise<Trainer>) => p.then(() => expect.fail('the resume should be refused'), (e: Error & { code?: string }) => e);

    it('resumes with the plugin (the control)', async () => {
      const { dir, weights } = await saved([adaptiveBrakingPlugin({ rho: 1 })]);
      const t = await Trainer.resume(dir, options([adaptiveBrakingPlugin({ rho: 1 })]));
      expect(Object.values(t.variables).map((v) => Array.from(v.dataSync()))).to.deep.equal(weights);
      expect(Object.keys(t.optimizerState!.momentum)).to.include('scale');
      expect(warnings).to.deep.equal([]);
      t.dispose();
    });

    it('removed on resume: refused naming the plugin, the member and the fix, without a "saved no state" warning', async () => {
      const { dir } = await saved([adaptiveBrakingPlugin({ rho: 1 })]);
      const err = await refused(Trainer.resume(dir, options([])));
      expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message).to.match(
        /chain member 'momentum' was supplied by plugin 'adaptive-braking' when saved but is the optimizer's own now.*Resume with the plugins the run was saved with \(add 'adaptive-braking'\), or start a fresh run/,
      );
      expect(warnings.join('\n')).not.to.match(/saved no state/);
    });

    it('added on resume: refused naming the plugin, the member and the fix', async () => {
      const { dir } = await saved([]);
      const err = await refused(Trainer.resume(dir, options([adaptiveBrakingPlugin({ rho: 1 })])));
      expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message).to.match(
        /chain member 'momentum' was the optimizer's own when saved but is supplied by plugin 'adaptive-braking' now.*Resume with the plugins the run was saved with \(remove 'adaptive-braking'\), or start a fresh run/,
      );
    });

    it("the package's 'brakes' plugin braking in its place is named too", async () => {
      const { dir } = await saved([adaptiveBrakingPlugin({ rho: 1 })]);
      const brakes = brakesPlugin({ rho: 1 });
      const err = await refused(Trainer.resume(dir, options([brakes])));
      expect(err.message).to.match(/was supplied by plugin 'adaptive-braking' when saved but is supplied by plugin 'brakes' now.*\(add 'adaptive-braking', remove 'brakes'\)/);
      brakes.dispose();
    });
  });

  describe('tapfitPlugin (the CLI entry point)', () => {
    it("is one plugin named 'brakes' that brakes and/or delays", async () => {
      const both = tapfitPlugin({ delay: 2, rho: 1 });
      expect(both.name).to.equal('brakes');
      const data = blobs(32);
      const t = trainer(sgd({ lr: 0.1, momentum: 0.9 }), [both]);
      await t.fit(data, { epochs: 1, batchSize: 8 });
      expect(t.skipped).to.equal(2);
      expect(t.step).to.equal(2);
      expect(Object.keys(t.optimizerState!.momentum)).to.include('scale');
      t.dispose();
      both.dispose();

      const delayOnly = tapfitPlugin({ delay: 1, braking: false });
      const t2 = trainer(sgd({ lr: 0.1, momentum: 0.9 }), [delayOnly]);
      await t2.fit(data, { epochs: 1, batchSize: 8 });
      expect(Object.keys(t2.optimizerState!.momentum)).to.deep.equal(['count', 'velocity']);
      expect(t2.skipped).to.equal(1);
      t2.dispose();
      delayOnly.dispose();
      data.dispose();
    });

    it('with a delay it declares a conflict with the pipeline (a second delay on top of the stages\'), without one it composes', () => {
      const pipelineStub: TapfitPlugin = { name: 'pipeline', core: '*', apply() {} };
      expect(() => trainer(sgd({ lr: 0.1, momentum: 0.9 }), [tapfitPlugin({ delay: 2 }), pipelineStub])).to.throw(
        /plugins 'brakes' and 'pipeline' cannot be used together: the pipeline already delays each stage's gradients; brakes' delay of 2 would stack on top\. Use brakes\(\{ delay: 0 \}\)/,
      );
      expect(() => trainer(sgd({ lr: 0.1, momentum: 0.9 }), [tapfitPlugin({ rho: 1 }), pipelineStub]).dispose()).not.to.throw();
    });
  });
});
