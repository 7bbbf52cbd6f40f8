import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import {
  AutodiffBackprop,
  readParam,
  SegmentExecutor,
  segmentModel,
  sgd,
  TapfitError,
  Tokens,
  type Backprop,
  type ForwardPass,
  type MemoryPolicy,
  type PluginApi,
  type Segment,
  type StepRequest,
  type TapfitPlugin,
} from '../src';
import { blobs, tinyTrainer, useBackend } from './fixtures';

const plugin = (name: string, apply: (api: PluginApi) => void, extra: Partial<TapfitPlugin> = {}): TapfitPlugin => ({ name, core: '^0.1.0', apply, ...extra });

/** dense(4 -> 6, tanh) -> dense(6 -> 3), parameters read through readParam so taps can substitute them. */
function readingModel(seed = 3) {
  const v = (shape: number[], s: number) => tf.variable(tf.randomNormal(shape, 0, 0.5, 'float32', s), true);
  const [w1, b1, w2, b2] = [v([4, 6], seed), v([6], seed + 1), v([6, 3], seed + 2), v([3], seed + 3)];
  const layer = (name: string, w: tf.Variable, b: tf.Variable, act: boolean): Segment => ({
    name,
    params: [w, b],
    forward: ([x], ctx) => {
      const y = tf.add(tf.matMul(x, readParam(ctx, w)), readParam(ctx, b));
      return [act ? tf.tanh(y) : y];
    },
  });
  return segmentModel([layer('hidden', w1, b1, true), layer('out', w2, b2, false)], { inputShape: [4], outputShape: [3] });
}

/** A forward tap that halves every weight it is asked for, and one that adds 1 to the hidden layer's output. */
const halveWeights = plugin('halve', ({ hooks }) =>
  hooks.forward.tap('halve', (pass: ForwardPass) => ({ ...pass, ctx: { ...pass.ctx, weights: (v: tf.Variable) => tf.mul(v, 0.5) } })),
);
const shiftHidden = plugin('shift', ({ hooks }) =>
  hooks.forward.tap('shift', (pass) => ({
    ...pass,
    segments: pass.segments.map((s) => (s.name === 'hidden' ? { ...s, forward: (xs, ctx) => s.forward(xs, ctx).map((y) => tf.add(y, 1)) } : s)),
  })),
);

/** Marks every segment with `policy`, so the default Backprop runs the segment executor (or autodiff for 'store'). */
const planAll = (policy: MemoryPolicy) => plugin(`plan-${policy}`, ({ hooks }) => hooks.planMemory.tap(`plan-${policy}`, (p) => ({ ...p, segments: p.segments.map((s) => ({ ...s, policy })) })));

async function trainedWeights(plugins: TapfitPlugin[]): Promise<number[][]> {
  const model = readingModel();
  const data = blobs(24);
  const t = tinyTrainer({ model, plugins });
  await t.fit(data, { epochs: 2, batchSize: 8, shuffle: false });
  const out = model.segments.flatMap((s) => s.params).map((v) => Array.from(v.dataSync()));
  t.dispose();
  data.dispose();
  tf.dispose(model.segments.flatMap((s) => s.params));
  return out;
}

describe('the training step', () => {
  useBackend('cpu');

  describe('forward taps reach every Backprop', () => {
    for (const [label, taps] of [
      ['ctx.weights', [halveWeights]],
      ['wrapped segments', [shiftHidden]],
      ['both', [halveWeights, shiftHidden]],
    ] as const) {
      it(`plain autodiff and the segment executor train the same with a tap on ${label}`, async () => {
        const autodiff = await trainedWeights([...taps]);
        const untapped = await trainedWeights([]);
        const recompute = await trainedWeights([...taps, planAll('recompute')]);
        expect(autodiff).to.not.deep.equal(untapped); // the tap changes training
        autodiff.forEach((w, i) => w.forEach((x, j) => expect(Math.abs(x - recompute[i][j])).to.be.below(1e-5)));
      });
    }

    it('hands a Backprop the tapped segments and context in one request', async () => {
      const seen: StepRequest[] = [];
      const spy: Backprop = { compute: (r) => (seen.push(r), new AutodiffBackprop().compute(r)) };
      const data = blobs(8);
      const t = tinyTrainer({
        model: readingModel(),
        plugins: [halveWeights, plugin('spy', ({ services }) => services.register(Tokens.Backprop, spy), { provides: [Tokens.Backprop] })],
      });
      await t.fit(data, { epochs: 1, batchSize: 8 });
      expect(seen).to.have.length(1);
      expect(seen[0].segments.map((s) => s.name)).to.deep.equal(['hidden', 'out']);
      expect(typeof seen[0].ctx.weights).to.equal('function');
      expect(seen[0].ctx).to.include({ training: true, recomputing: false, step: 0 });
      expect(seen[0].variables).to.have.length(4);
      t.dispose();
      data.dispose();
    });

    it('a tap that drops or renames a segment is refused, naming the plugin', async () => {
      const data = blobs(8);
      const t = tinyTrainer({ model: readingModel(), plugins: [plugin('dropper', ({ hooks }) => hooks.forward.tap('dropper', (p) => ({ ...p, segments: p.segments.slice(1) })))] });
      const err = await t.fit(data, { epochs: 1, batchSize: 8 }).catch((e: TapfitError) => e);
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).message).to.match(/plugin 'dropper' failed in hook 'forward': the segments are \[out\] but the model's are \[hidden, out\]/);
      expect(t.step).to.equal(0);
      t.dispose();
      data.dispose();
    });
  });

  describe('backward taps are checked against the variables', () => {
    const cases: [string, (g: Record<string, tf.Tensor>) => Record<string, tf.Tensor>, RegExp][] = [
      ['a wrong shape (broadcast silently under plain SGD before)', (g) => ({ ...g, [Object.keys(g)[0]]: tf.ones([1]) }), /is float32\[1\] but the variable is float32\[4,8\]/],
      ['a wrong dtype', (g) => ({ ...g, [Object.keys(g)[1]]: tf.zeros([8], 'int32') }), /is int32\[8\] but the variable is float32\[8\]/],
      ['an unknown variable', (g) => ({ ...g, nope: tf.zeros([2]) }), /'nope' is not a trainable variable/],
    ];
    for (const [label, corrupt, message] of cases) {
      it(`${label} is refused naming the plugin, before any update`, async () => {
        const data = blobs(8);
        const t = tinyTrainer({ optimizer: sgd({ lr: 0.1 }), plugins: [plugin('bad-grads', ({ hooks }) => hooks.backward.tap('bad-grads', (g) => g && corrupt(g)))] });
        await t.setup();
        const before = Object.values(t.variables).map((v) => Array.from(v.dataSync()));
        const tensors = tf.memory().numTensors;
        const err = await t.fit(data, { epochs: 1, batchSize: 8 }).catch((e: TapfitError) => e);
        expect((err as TapfitError).code).to.equal('TAPFIT_E_SHAPE');
        expect((err as TapfitError).message).to.match(/plugin 'bad-grads' returned a bad gradient from hook 'backward'/).and.match(message);
        expect(Object.values(t.variables).map((v) => Array.from(v.dataSync()))).to.deep.equal(before);
        expect(tf.memory().numTensors).to.equal(tensors);
        t.dispose();
        data.dispose();
      });
    }
  });

  describe('services: provides', () => {
    it('replacing a registered service needs `provides`', () => {
      expect(() => tinyTrainer({ plugins: [plugin('sneaky', ({ services }) => services.register(Tokens.Backprop, new SegmentExecutor()))] }))
        .to.throw(TapfitError, /plugin 'sneaky' replaces the service 'Backprop' without declaring it\. Add `provides: \[Tokens\.Backprop\]`/)
        .with.property('code', 'TAPFIT_E_PLUGIN_PROVIDES');
    });

    it('two plugins providing one service conflict at registration, before any apply, naming both', () => {
      let applied = 0;
      const provider = (name: string) => plugin(name, () => void applied++, { provides: [Tokens.Backprop] });
      expect(() => tinyTrainer({ plugins: [provider('pipeline-a'), provider('pipeline-b')] }))
        .to.throw(TapfitError, /plugins 'pipeline-a' and 'pipeline-b' both replace the service 'Backprop'/)
        .with.property('code', 'TAPFIT_E_PLUGIN_CONFLICTS');
      expect(applied).to.equal(0);
    });

    it('new services and decorations need no declaration', () => {
      const Mine = Symbol('mine');
      const t = tinyTrainer({
        plugins: [
          plugin('owner', ({ services }) => {
            services.register(Mine, 42);
            services.decorate(Tokens.Loss, (loss) => (y, p) => loss(y, p));
          }),
        ],
      });
      expect(t.resolve(Mine)).to.equal(42);
      t.dispose();
    });
  });
});
