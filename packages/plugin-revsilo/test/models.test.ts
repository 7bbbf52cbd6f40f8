import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, forwardSegments, modelVariables, TapfitError, trainableVariables, type MemoryPlan } from '@tapfit/core';
import { checkNoLeaks } from '@tapfit/core/testing';
import { expect } from 'chai';
import { diceCrossEntropy, diceScores, resolveRevBiFPN, revBiFPN, reversiblePlan, ReversibleSegment, reversibleUNet3d } from '../src';
import { expectAllclose, expectSameGradients, inference, invertPlan, invertSegments, replay, runSegments, setBackend, stepGradients, training } from './helpers';

const xent = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.cast(yTrue, 'int32'), yPred.shape[1] as number), yPred) as tf.Scalar;
const labels = (n: number, classes: number) => tf.tensor1d(Array.from({ length: n }, (_, i) => i % classes), 'int32');

/** Saves a layers model to memory and loads it back. */
async function roundTrip(model: tf.LayersModel): Promise<tf.LayersModel> {
  let artifacts: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  return tf.loadLayersModel(tf.io.fromMemory(artifacts!));
}

describe('revsilo models', () => {
  setBackend('cpu');

  describe('revBiFPN (docs/techniques.md §2.4)', () => {
    it("resolves S0's defaults, the variants' rounding and scaled-down widths", () => {
      const s0 = resolveRevBiFPN();
      expect(s0.streams.map((s) => s.channels)).to.deep.equal([48, 64, 80, 160]);
      expect(s0.streams.map((s) => s.kernel + (s.pad ?? 0))).to.deep.equal([3, 5, 5, 5]);
      expect([s0.extensions, s0.inputSize, s0.headChannels]).to.deep.equal([2, 224, 1280]);
      expect(resolveRevBiFPN({ variant: 'S3' }).streams.map((s) => s.channels)).to.deep.equal([128, 160, 208, 416]); // x 8/3, down to multiples of 16
      const tiny = resolveRevBiFPN({ width: 0.25, streams: 3, inputSize: 32 });
      expect(tiny.streams.map((s) => s.channels)).to.deep.equal([16, 16, 24]);
      expect(tiny.neckChannels).to.deep.equal([16, 16, 32]);
    });

    it('refuses inputs whose stream shapes do not halve, and bad options, naming the option', () => {
      expect(() => revBiFPN({ width: 0.25, streams: 3, inputSize: 40 })).to.throw(TapfitError, /option 'inputSize' is 40.*use a multiple of 16/);
      expect(() => revBiFPN({ channels: [16, 15, 32, 64] })).to.throw(TapfitError, /option 'channels' has 15 for stream 1.*even/);
      expect(() => revBiFPN({ variant: 'S9' as never })).to.throw(TapfitError, /option 'variant'/);
    });

    it('checks every per-stream list and count itself, naming the option (not a block inside) and the fix', () => {
      const base = { width: 0.25, streams: 2, extensions: 0, inputSize: 16, classes: 3 };
      const cases: [object, RegExp][] = [
        [{ kernels: [4, 5] }, /option 'kernels' has 4 for stream 0; use odd kernel sizes/],
        [{ kernels: [3] }, /option 'kernels' has 1 entries but the network has 2 streams; give 2 values/],
        [{ pads: [1, 0] }, /option 'pads' has 1 for stream 0; use even pads >= 0/],
        [{ expandRatios: [0, 1] }, /option 'expandRatios' has 0 for stream 0; use ratios > 0/],
        [{ seRatios: [2, 0] }, /option 'seRatios' has 2 for stream 0; use ratios in \[0, 1\]/],
        [{ neckChannels: [16, 0] }, /option 'neckChannels' has 0 for stream 1; use positive whole channel counts/],
        [{ headChannels: 0 }, /option 'headChannels' must be a positive integer \(got 0\)/],
        [{ inputChannels: 0 }, /option 'inputChannels' must be a positive integer \(got 0\); use 3 for RGB, 1 for grey/],
        [{ inputChannels: 1.5 }, /option 'inputChannels' must be a positive integer/],
        [{ dropPath: 2 }, /option 'dropPath' must be in \[0, 1\)/],
        [{ norm: 'bogus' }, /option 'norm' is 'bogus'; use one of batch, instance, group, none/],
        [{ activation: 'gelu' }, /option 'activation' is 'gelu'; use one of/],
      ];
      for (const [extra, message] of cases) {
        let err: unknown;
        try {
          revBiFPN({ ...base, ...extra });
        } catch (e) {
          err = e;
        }
        expect(err, JSON.stringify(extra)).to.be.instanceOf(TapfitError);
        expect((err as TapfitError).code).to.equal(ErrorCodes.CONFIG);
        expect((err as Error).message).to.match(/^revBiFPN: /).and.to.match(message);
      }
    });

    const tiny = () => revBiFPN({ width: 0.25, streams: 3, extensions: 1, inputSize: 32, classes: 3, dropout: 0 });

    it('has the documented segments and stream bookkeeping; the whole reversible stack inverts', () => {
      const m = tiny();
      expect(m.segments.map((s) => s.name.replace('revbifpn_', ''))).to.deep.equal(['tile', 'stem', 'grow1_blocks0', 'grow1_blocks1', 'grow1_silo', 'grow2_blocks0', 'grow2_blocks1', 'grow2_silo', 'ext0_blocks0', 'ext0_blocks1', 'ext0_silo', 'neck', 'head']);
      const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 1);
      const [tiled] = m.segments[0].forward([x], training);
      expect(tiled.shape).to.deep.equal([4, 32, 32, 1]);
      const stack = m.segments.slice(1, -2);
      const zs = runSegments(stack, [tiled], training);
      expect(zs.map((z) => z.shape)).to.deep.equal([
        [4, 8, 8, 16],
        [4, 4, 4, 16],
        [4, 2, 2, 24],
      ]);
      const [back] = invertSegments(stack, zs, replay);
      // Each segment's rebuild subtracts values as large as the stack's outputs and rounds
      // by about 1e-7 of them; over the stack the errors add up: atol in those units, per segment.
      const magnitude = Math.max(...zs.map((z) => tf.max(tf.abs(z)).dataSync()[0]));
      expectAllclose(back, tiled, 1e-4, 1e-6, 'whole stack', magnitude * stack.length);
      m.dispose();
    });

    it('executor gradients under invert equal plain autodiff of the stored twin (batch norm in training mode)', () => {
      const m = tiny();
      const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 2);
      const y = labels(4, 3);
      const want = stepGradients(m.stored(), x, y, xent, 'autodiff');
      const got = stepGradients(m, x, y, xent, invertPlan(m));
      expect(Math.abs(got.value - want.value)).to.be.below(1e-6 * Math.abs(want.value));
      expectSameGradients(got.grads, want.grads);
      m.dispose();
    });

    it('... also with stochastic depth in every transform and dropout in the head (masks replayed)', () => {
      const m = revBiFPN({ width: 0.25, streams: 3, extensions: 1, inputSize: 32, classes: 3, dropout: 0.3, dropPath: 0.2 });
      const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 3);
      const y = labels(4, 3);
      const ctx = { ...training, step: 7 };
      const want = stepGradients(m.stored(), x, y, xent, 'autodiff', ctx);
      const got = stepGradients(m, x, y, xent, invertPlan(m), ctx);
      expectSameGradients(got.grads, want.grads);
      // The masks are drawn: another step gives another loss.
      expect(stepGradients(m, x, y, xent, invertPlan(m), { ...ctx, step: 8 }).value).to.not.equal(got.value);
      m.dispose();
    });

    it('its tfjs-layers form predicts like the segments, and survives model.save / tf.loadLayersModel', async () => {
      const m = tiny();
      const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 4);
      stepGradients(m, x, labels(2, 3), xent, invertPlan(m)); // move the batch-norm statistics off their start
      const segments = forwardSegments(m, x, inference);
      expectAllclose(m.layersModel.predict(x) as tf.Tensor, segments, 1e-6, 1e-7, 'layers vs segments');
      const loaded = await roundTrip(m.layersModel);
      expectAllclose(loaded.predict(x) as tf.Tensor, segments, 1e-6, 1e-7, 'loaded model');
      expect(loaded.countParams()).to.equal(m.layersModel.countParams());
      loaded.dispose();
      m.dispose();
    });

    it("a step's peak memory under the plugin's plan does not grow with depth; the all-store twin's does (docs/techniques.md §2.7 item 6)", async () => {
      const x = tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 11);
      const y = labels(4, 3);
      const peaks = async (extensions: number) => {
        const m = revBiFPN({ width: 0.25, streams: 3, extensions, inputSize: 32, classes: 3, dropout: 0, name: `depth${extensions}` });
        const stored: MemoryPlan = { segments: m.segments.map((s) => ({ name: s.name, policy: 'store' })), extraBytes: [] };
        const plan = reversiblePlan(m);
        stepGradients(m, x, y, xent, plan); // the norms' kept statistics exist from the first step on
        const peak = async (p: MemoryPlan) => {
          const start = tf.memory().numBytes;
          const info = await tf.profile(() => void stepGradients(m, x, y, xent, p));
          return info.peakBytes - start;
        };
        const r = { reversible: await peak(plan), stored: await peak(stored) };
        m.dispose();
        return r;
      };
      const shallow = await peaks(1);
      const deep = await peaks(4); // 3 more silos, 9 more reversible segments
      // Measured (cpu): reversible 1.71 MiB at both depths, stored 7.83 -> 15.18 MiB.
      expect(deep.reversible / shallow.reversible, 'reversible growth').to.be.below(1.1);
      expect(deep.stored / shallow.stored, 'stored growth').to.be.above(1.5);
      expect(deep.stored / deep.reversible, 'stored / reversible').to.be.above(4);
    });

    it('leaks nothing over repeated invert steps', async () => {
      const m = tiny();
      const x = tf.randomNormal([2, 32, 32, 3], 0, 1, 'float32', 5);
      const y = labels(2, 3);
      const plan = invertPlan(m);
      stepGradients(m, x, y, xent, plan);
      await checkNoLeaks(() => stepGradients(m, x, y, xent, plan), { repeats: 3 });
      m.dispose();
    });
  });

  describe('reversibleUNet3d (docs/techniques.md §3.2)', () => {
    const unet = (options = {}) => reversibleUNet3d({ levels: 3, blocksPerLevel: 2, baseChannels: 4, expandRatio: 2, classes: 3, ...options });

    it('chains stem, reversible blocks, down/up layers and head, carrying the skips', () => {
      const m = unet();
      expect(m.segments.map((s) => `${s.name.replace('unet_', '')}${s.inverse ? '*' : ''}`)).to.deep.equal([
        'stem', 'enc0_block0*', 'enc0_block1*', 'down0', 'enc1_block0*', 'enc1_block1*', 'down1', 'enc2_block0*', 'enc2_block1*',
        'up1', 'dec1_block0*', 'dec1_block1*', 'up0', 'dec0_block0*', 'dec0_block1*', 'head',
      ]);
      const x = tf.randomNormal([1, 8, 8, 8, 1], 0, 1, 'float32', 6);
      let xs = [x];
      const streams: number[] = [];
      for (const s of m.segments) {
        xs = s.forward(xs, training);
        streams.push(xs.length);
      }
      expect(streams).to.deep.equal([1, 1, 1, 2, 2, 2, 3, 3, 3, 2, 2, 2, 1, 1, 1, 1]);
      expect(xs[0].shape).to.deep.equal([1, 8, 8, 8, 3]);
      m.dispose();
    });

    it('executor gradients under invert equal plain autodiff of the stored twin (instance norm), and with batch norm', () => {
      for (const norm of ['instance', 'batch'] as const) {
        const m = unet({ norm });
        const x = tf.randomNormal([1, 8, 8, 8, 1], 0, 1, 'float32', 7);
        const y = tf.randomUniform([1, 8, 8, 8], 0, 3, 'int32', 8);
        const loss = diceCrossEntropy({ classes: 3 });
        const want = stepGradients(m.stored(), x, y, loss, 'autodiff');
        const got = stepGradients(m, x, y, loss, invertPlan(m));
        expectSameGradients(got.grads, want.grads);
        m.dispose();
      }
    });

    it('refuses volumes that do not halve and odd channel counts, naming the segment or option', () => {
      const m = unet();
      expect(() => forwardSegments(m, tf.zeros([1, 6, 8, 8, 1]), training)).to.throw(TapfitError, /segment 'unet_down1'.*divisible by 2/);
      expect(() => reversibleUNet3d({ baseChannels: 5 })).to.throw(TapfitError, /option 'baseChannels' is 5.*even/);
      m.dispose();
    });

    it('its tfjs-layers form (skips wired as a graph) predicts like the segment chain and survives save / load', async () => {
      const m = unet({ norm: 'batch' });
      const x = tf.randomNormal([1, 8, 8, 8, 1], 0, 1, 'float32', 9);
      stepGradients(m, x, tf.zeros([1, 8, 8, 8], 'int32'), diceCrossEntropy({ classes: 3 }), invertPlan(m));
      const chain = forwardSegments(m, x, inference);
      expectAllclose(m.layersModel.predict(x) as tf.Tensor, chain, 1e-6, 1e-7, 'layers vs segments');
      const loaded = await roundTrip(m.layersModel);
      expectAllclose(loaded.predict(x) as tf.Tensor, chain, 1e-6, 1e-7, 'loaded model');
      loaded.dispose();
      m.dispose();
    });

    it('an option given as undefined keeps its default (fixedPoint 16, seed 1, name unet)', () => {
      const given = unet({ fixedPoint: undefined, seed: undefined, name: undefined, norm: undefined, levels: undefined });
      const plain = reversibleUNet3d({ blocksPerLevel: 2, baseChannels: 4, expandRatio: 2, classes: 3 });
      expect([given.options.fixedPoint, given.options.seed, given.options.name, given.options.norm, given.options.levels]).to.deep.equal([16, 1, 'unet', 'instance', 4]);
      expect(given.segments.filter((s) => s instanceof ReversibleSegment).map((s) => (s as ReversibleSegment).fixedPoint)).to.satisfy((bits: number[]) => bits.length > 0 && bits.every((b) => b === 16));
      expect(given.segments.map((s) => s.name)).to.deep.equal(plain.segments.map((s) => s.name));
      modelVariables(given).forEach((v, i) => expect(Array.from(v.dataSync()), v.name).to.deep.equal(Array.from(modelVariables(plain)[i].dataSync()))); // same seed
      given.dispose();
      plain.dispose();
    });

    it('has as many trainable variables as its layers model says', () => {
      const m = unet();
      expect(trainableVariables(m).length).to.equal(m.layersModel.trainableWeights.length);
      m.dispose();
    });
  });

  describe('soft Dice + cross-entropy', () => {
    it('equals a float64 computation of the formula', () => {
      const logits = tf.randomNormal([2, 2, 2, 2, 3], 0, 1, 'float32', 10);
      const y = tf.tensor4d([0, 1, 2, 1, 0, 0, 2, 2, 1, 1, 0, 2, 0, 1, 1, 2], [2, 2, 2, 2], 'int32');
      const z = logits.arraySync() as number[][][][][];
      const t = y.dataSync();
      const flat = z.flat(3) as number[][];
      let ce = 0;
      const inter = [0, 0, 0];
      const sums = [0, 0, 0];
      flat.forEach((row, v) => {
        const m = Math.max(...row);
        const e = row.map((r) => Math.exp(r - m));
        const s = e.reduce((a, b) => a + b);
        const p = e.map((x) => x / s);
        ce -= Math.log(p[t[v]]);
        p.forEach((pc, c) => {
          inter[c] += pc * (t[v] === c ? 1 : 0);
          sums[c] += pc + (t[v] === c ? 1 : 0);
        });
      });
      const dice = inter.map((i, c) => (2 * i + 1) / (sums[c] + 1));
      const want = ce / flat.length + 1 - dice.reduce((a, b) => a + b) / 3;
      expect(diceCrossEntropy({ classes: 3 })(y, logits).dataSync()[0]).to.be.closeTo(want, 1e-5);
    });

    it('hard Dice is 1 for a perfect prediction and 0 for a disjoint one', () => {
      const y = tf.tensor2d([[0, 1, 1, 0]], [1, 4], 'int32');
      const perfect = tf.oneHot(tf.tensor2d([[0, 1, 1, 0]], [1, 4], 'int32'), 2).mul(10);
      expect(diceScores(y, perfect, 2)).to.deep.equal([1, 1]);
      const wrong = tf.oneHot(tf.tensor2d([[1, 0, 0, 1]], [1, 4], 'int32'), 2).mul(10);
      expect(diceScores(y, wrong, 2)).to.deep.equal([0, 0]);
    });
  });
});
