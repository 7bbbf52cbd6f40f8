import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { fromLayersModel, losses, noiseKey, noiseSeed, SegmentExecutor, sgd, SilentLogger, Trainer, type MemoryPolicy, type SegmentContext, type TapfitPlugin, type TrainableModel, type TrainerOptions } from '../src';
import { blobs, tmpDir, useBackend } from './fixtures';
import { planOf, requestOf, toArrays } from './memory/models';

/**
 * The rule of core README "Randomness and reproducibility": a training forward's dropout masks
 * are a pure function of (trainer seed, batch, layer). Oracles: the same step stored instead of
 * recomputed, the same forward run first, the same run without interruption or in another trainer.
 */
describe('dropout masks follow (seed, batch, layer)', () => {
  useBackend('cpu');

  /** The model, as source text too: a child process builds the same one. */
  const DROPOUT_MLP = `tf.sequential({
    layers: [
      tf.layers.dense({ units: 16, inputShape: [4], activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'd1' }),
      tf.layers.dropout({ rate: 0.5, name: 'drop' }),
      tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), name: 'head' }),
    ],
  })`;
  const dropoutMlp = (): tf.Sequential => new Function('tf', `return ${DROPOUT_MLP};`)(tf) as tf.Sequential;

  /** The model as tf.loadLayersModel and the threaded pipeline's workers build it: from its JSON (Dropout's absent seed becomes null). */
  async function fromJson(model: tf.LayersModel): Promise<tf.LayersModel> {
    const loaded = await tf.models.modelFromJSON({ modelTopology: model.toJSON(null, false) as never });
    loaded.setWeights(model.getWeights());
    return loaded;
  }

  function executorStep(model: TrainableModel, x: tf.Tensor, y: tf.Tensor, policy: MemoryPolicy, ctx: SegmentContext) {
    const vars = [...new Set(model.segments.flatMap((s) => s.params))];
    const r = new SegmentExecutor().compute(requestOf(model, planOf(model, () => policy), x, y, losses.softmaxCrossEntropy, { variables: vars, ctx }));
    const out = { value: r.value.dataSync()[0], grads: toArrays(r.grads) };
    tf.dispose([r.value, ...Object.values(r.grads)]);
    return out;
  }

  const ctxOf = (serial: number, recomputing = false): SegmentContext => ({ training: true, recomputing, step: serial, noiseKey: noiseKey(7, serial) });

  it('a Dropout loaded from JSON (seed null) is replayed by a recompute: gradients equal storing it, and its seed stays null', async () => {
    const built = dropoutMlp();
    const loaded = await fromJson(built);
    expect((loaded.getLayer('drop') as unknown as { seed: unknown }).seed).to.equal(null);
    const model = fromLayersModel(loaded);
    const x = tf.randomNormal([6, 4], 0, 1, 'float32', 3);
    const y = tf.tensor1d([0, 1, 2, 1, 0, 2], 'int32');
    const stored = executorStep(model, x, y, 'store', ctxOf(0));
    const recomputed = executorStep(model, x, y, 'recompute', ctxOf(0));
    expect(recomputed.value).to.equal(stored.value);
    expect(recomputed.grads).to.deep.equal(stored.grads);
    expect((loaded.getLayer('drop') as unknown as { seed: unknown }).seed).to.equal(null);
    // The mask is live (the test can fail): another batch draws another mask.
    expect(executorStep(model, x, y, 'store', ctxOf(1)).grads).to.not.deep.equal(stored.grads);
    tf.dispose([x, y]);
    built.dispose();
    loaded.dispose();
  });

  it("replays sample t's mask after the forward of sample t + 1 (a pipeline stage's order), for built and loaded models", async () => {
    const built = dropoutMlp();
    const loaded = await fromJson(built);
    for (const m of [built, loaded]) {
      const drop = fromLayersModel(m).segments.find((s) => s.name === 'drop')!;
      const x = tf.ones([4, 16]);
      const first = drop.forward([x], ctxOf(0))[0];
      const second = drop.forward([x], ctxOf(1))[0];
      const replay = drop.forward([x], ctxOf(0, true))[0];
      expect(Array.from(replay.dataSync())).to.deep.equal(Array.from(first.dataSync()));
      expect(Array.from(second.dataSync())).to.not.deep.equal(Array.from(first.dataSync()));
      tf.dispose([x, first, second, replay]);
    }
    built.dispose();
    loaded.dispose();
  });

  describe('a Dropout layer applied twice in one forward (shared in a functional model)', () => {
    /** x -> the same Dropout twice -> both outputs side by side; with `dense`, between two Dense layers. */
    function sharedDropout(dense: boolean): tf.LayersModel {
      const input = tf.input({ shape: [dense ? 4 : 16] });
      const h = dense ? (tf.layers.dense({ units: 16, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'd1' }).apply(input) as tf.SymbolicTensor) : input;
      const drop = tf.layers.dropout({ rate: 0.5, name: 'drop' });
      const both = tf.layers.concatenate({ name: 'both' }).apply([drop.apply(h) as tf.SymbolicTensor, drop.apply(h) as tf.SymbolicTensor]) as tf.SymbolicTensor;
      const out = dense ? (tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), name: 'head' }).apply(both) as tf.SymbolicTensor) : both;
      return tf.model({ inputs: input, outputs: out });
    }
    const halves = (t: tf.Tensor) => tf.split(t, 2, 1).map((h) => Array.from(h.dataSync()));

    it('draws a fresh mask at each application, as tfjs does, and a replay redraws both', () => {
      const model = sharedDropout(false);
      const x = tf.ones([4, 16]);
      // The oracle: tfjs's own training call draws each application afresh.
      const [tfjsFirst, tfjsSecond] = halves(model.apply(x, { training: true }) as tf.Tensor);
      expect(tfjsSecond).to.not.deep.equal(tfjsFirst);
      const [segment] = fromLayersModel(model).segments;
      const first = segment.forward([x], ctxOf(0))[0];
      const [a, b] = halves(first);
      expect(b).to.not.deep.equal(a);
      const replay = segment.forward([x], ctxOf(0, true))[0];
      expect(Array.from(replay.dataSync())).to.deep.equal(Array.from(first.dataSync()));
      expect((model.getLayer('drop') as unknown as { seed: unknown }).seed).to.equal(undefined); // its own (absent) seed put back
      tf.dispose([x, first, replay]);
      model.dispose();
    });

    it('with the memory executor recomputing it: the loss is that of draws 0 and 1 of the rule, and the gradients equal storing it', () => {
      const layers = sharedDropout(true);
      const model = fromLayersModel(layers);
      const x = tf.randomNormal([6, 4], 0, 1, 'float32', 3);
      const y = tf.tensor1d([0, 1, 2, 1, 0, 2], 'int32');
      const ctx = ctxOf(0);
      // The oracle: the model written out with tf ops, each application's mask seeded by the rule (noiseSeed's draw
      // index: 0 for the application tfjs's graph runs first, 1 for the other; which one that is is tfjs's order).
      const lossWith = (draws: number[]) =>
        tf.tidy(() => {
          const [w1, b1, w2, b2] = ['d1', 'head'].flatMap((n) => layers.getLayer(n).getWeights());
          const h = tf.relu(tf.add(tf.matMul(x, w1), b1));
          const masked = draws.map((draw) => tf.dropout(h, 0.5, undefined, noiseSeed(ctx, 'drop', draw)));
          return losses.softmaxCrossEntropy(y, tf.add(tf.matMul(tf.concat(masked, 1), w2), b2)).dataSync()[0];
        });
      const stored = executorStep(model, x, y, 'store', ctx);
      const recomputed = executorStep(model, x, y, 'recompute', ctx);
      const nearest = Math.min(...[[0, 1], [1, 0]].map((draws) => Math.abs(lossWith(draws) - stored.value)));
      expect(nearest).to.be.below(1e-6);
      expect(recomputed.value).to.equal(stored.value);
      expect(recomputed.grads).to.deep.equal(stored.grads);
      tf.dispose([x, y]);
      layers.dispose();
    });
  });

  it('a Dropout shared by two nested models of a chain: the model runs as one segment (a shared layer makes no chain), each application its own draw', () => {
    const drop = tf.layers.dropout({ rate: 0.5, name: 'drop' });
    const nested = (name: string) => {
      const input = tf.input({ shape: [16] });
      const h = tf.layers.dense({ units: 16, useBias: false, kernelInitializer: 'identity', name: `${name}-identity` }).apply(input) as tf.SymbolicTensor;
      return tf.model({ name, inputs: input, outputs: drop.apply(h) as tf.SymbolicTensor });
    };
    const input = tf.input({ shape: [16] });
    const layers = tf.model({ inputs: input, outputs: nested('b').apply(nested('a').apply(input)) as tf.SymbolicTensor });
    const model = fromLayersModel(layers);
    expect(model.segments).to.have.length(1);
    const x = tf.ones([4, 16]);
    const ctx = ctxOf(0);
    const [out] = model.segments[0].forward([x], ctx);
    // The oracle: the rule's draws 0 (in a) and 1 (in b), one after the other; the same mask twice would differ.
    const twice = (draws: number[]) => tf.tidy(() => Array.from(draws.reduce((t, draw) => tf.dropout(t, 0.5, undefined, noiseSeed(ctx, 'drop', draw)), x as tf.Tensor).dataSync()));
    expect(Array.from(out.dataSync())).to.deep.equal(twice([0, 1]));
    expect(Array.from(out.dataSync())).to.not.deep.equal(twice([0, 0]));
    tf.dispose([x, out]);
    layers.dispose();
  });

  describe('in a Trainer', () => {
    const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));
    const options = (seed: number, extra: Partial<TrainerOptions> = {}): TrainerOptions => ({
      model: dropoutMlp(),
      loss: 'softmaxCrossEntropy',
      optimizer: sgd({ lr: 0.1, momentum: 0.9 }),
      logger: new SilentLogger(),
      seed,
      ...extra,
    });

    it("the trainer's seed covers dropout: two trainers with one seed train to bitwise equal weights, another seed to others", async () => {
      const data = blobs(32);
      const runs = [];
      for (const seed of [3, 3, 4]) {
        const t = new Trainer(options(seed));
        await t.fit(data, { epochs: 2, batchSize: 8, shuffle: false }); // unshuffled: the seed reaches only the masks
        runs.push(weights(t));
        t.model.layersModel!.dispose();
        t.dispose();
      }
      expect(runs[1]).to.deep.equal(runs[0]);
      expect(runs[2]).to.not.deep.equal(runs[0]);
      data.dispose();
    });

    it('another process with the same seed trains to bitwise the same weights (nothing is drawn from process state)', async () => {
      const train = `
        const tf = require('@tensorflow/tfjs');
        const core = require(${JSON.stringify(path.join(__dirname, '..', 'src'))});
        const { blobData } = require(${JSON.stringify(path.join(__dirname, '..', 'src', 'testing'))});
        (async () => {
          await tf.setBackend('cpu');
          const t = new core.Trainer({ model: ${DROPOUT_MLP}, loss: 'softmaxCrossEntropy', optimizer: core.sgd({ lr: 0.1, momentum: 0.9 }), logger: new core.SilentLogger(), seed: 3 });
          await t.fit(blobData(32, { seed: 1 }), { epochs: 2, batchSize: 8 });
          console.log(JSON.stringify(Object.values(t.variables).map((v) => Array.from(v.dataSync()))));
        })();`;
      const child = spawnSync(process.execPath, ['-e', train], { cwd: path.join(__dirname, '..', '..'), encoding: 'utf8', timeout: 120_000 });
      expect(child.status, child.stderr).to.equal(0);
      const data = blobs(32);
      const t = new Trainer(options(3));
      await t.fit(data, { epochs: 2, batchSize: 8 });
      expect(JSON.parse(child.stdout.trim().split('\n').at(-1)!)).to.deep.equal(weights(t));
      t.model.layersModel!.dispose();
      t.dispose();
      data.dispose();
    });

    it('each batch gets its own noise key, also while updates are withheld (a gradient delay, a skipped step)', async () => {
      const keys: (number | undefined)[] = [];
      const withhold: TapfitPlugin = {
        name: 'withhold',
        core: '^0.1.0',
        apply: ({ hooks }) => {
          hooks.forward.tap('withhold', (pass) => (keys.push(pass.ctx.noiseKey), pass));
          hooks.backward.tap('withhold', (g, i) => (i.batch < 2 ? null : g)); // as a delay of 2 does: no update for two batches
        },
      };
      const data = blobs(32);
      const t = new Trainer(options(5, { plugins: [withhold] }));
      await t.fit(data, { epochs: 1, batchSize: 8 });
      expect(t.step).to.equal(2);
      expect(keys).to.deep.equal([0, 1, 2, 3].map((serial) => noiseKey(5, serial)));
      expect(new Set(keys).size).to.equal(4);
      t.model.layersModel!.dispose();
      t.dispose();
      data.dispose();
    });

    it('resuming a run with dropout is bitwise equal to training straight through (stopped mid-epoch, after a skipped update)', async () => {
      // A backward tap withholds the update of the third batch: the masks follow the batches run, not the updates applied.
      const skipThird = (): TapfitPlugin => ({ name: 'skip-third', core: '^0.1.0', apply: ({ hooks }) => hooks.backward.tap('skip-third', (g, i) => (i.epoch === 0 && i.batch === 2 ? null : g)) });
      const stopAt = (stop: () => void): TapfitPlugin => ({ name: 'stop-at', core: '^0.1.0', apply: ({ hooks }) => hooks.batchEnd.tap('stop-at', (i) => void (i.epoch === 1 && i.batch === 1 && stop())) });
      const data = blobs(32);
      const straight = new Trainer(options(5, { plugins: [skipThird()] }));
      await straight.fit(data, { epochs: 3, batchSize: 8 });
      const holder: { t?: Trainer } = {};
      const interrupted = (holder.t = new Trainer(options(5, { plugins: [skipThird(), stopAt(() => holder.t!.stop())] })));
      await interrupted.fit(data, { epochs: 3, batchSize: 8 });
      expect(interrupted.skipped).to.equal(1);
      const dir = tmpDir();
      await interrupted.save(dir);
      const resumed = await Trainer.resume(dir, options(5, { plugins: [skipThird(), stopAt(() => {})] }));
      await resumed.fit(data, { epochs: 3, batchSize: 8 });
      expect(resumed.step).to.equal(straight.step);
      expect(weights(resumed)).to.deep.equal(weights(straight));
      for (const t of [straight, interrupted, resumed]) {
        t.model.layersModel!.dispose();
        t.dispose();
      }
      data.dispose();
    });
  });
});
