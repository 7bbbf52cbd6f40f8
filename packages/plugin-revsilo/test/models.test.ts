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

/** The CONFIG error `f` throws, or a failed expectation naming `what`. */
function configError(f: () => unknown, what: string): TapfitError {
  try {
    f();
  } catch (e) {
    expect(e, what).to.be.instanceOf(TapfitError);
    expect((e as TapfitError).code, what).to.equal(ErrorCodes.CONFIG);
    return e as TapfitError;
  }
  expect.fail(`${what} was accepted`);
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

    it('refuses a misspelt option naming the nearest valid one (it built the default network), and values of the wrong type', () => {
      const base = { width: 0.25, streams: 2, extensions: 0, inputSize: 16, classes: 3 };
      const cases: [object, RegExp][] = [
        [{ widht: 0.25 }, /^revBiFPN: unknown option\(s\) 'widht' \(did you mean 'width'\?\)/],
        [{ fixedpoint: 0 }, /unknown option\(s\) 'fixedpoint' \(did you mean 'fixedPoint'\?\)/],
        [{ dims: 3 }, /unknown option\(s\) 'dims'/], // a 2-D network: the setting was ignored
        [{ width: '0.25' }, /option 'width' must be a number > 0 \(e\.g\. 0\.25 for a scaled-down network\) \(got '0\.25'\)/],
        [{ streams: null }, /option 'streams' must be an integer from 1 to 4/],
        [{ zeroInitLastGamma: 'no' }, /option 'zeroInitLastGamma' must be true or false \(got 'no'\)/],
        [{ name: '' }, /option 'name' must be a non-empty string/],
        [{ kernels: 3 }, /option 'kernels' must be a list with one number per stream \(got 3\)/],
        [{ groups: 0 }, /option 'groups' must be a positive integer \(got 0\); use a divisor of every channel count/],
        [{ epsilon: 0 }, /option 'epsilon' must be > 0 \(got 0\); use e\.g\. 1e-3/],
        [{ momentum: 1.5 }, /option 'momentum' must be in \[0, 1\] \(got 1\.5\); use e\.g\. 0\.9/],
        [{ seed: 1.5 }, /option 'seed' must be an integer \(got 1\.5\)/],
      ];
      for (const [extra, message] of cases) expect(configError(() => resolveRevBiFPN({ ...base, ...extra } as never), JSON.stringify(extra)).message, JSON.stringify(extra)).to.match(message);
      expect(configError(() => revBiFPN('S0' as never), 'a string').message).to.match(/^revBiFPN: options must be an object, e\.g\. revBiFPN\(\{ width: 0\.25 \}\)/);
      // Spelt right, the same options build (undefined keeps a default).
      expect(resolveRevBiFPN({ ...base, fixedPoint: 0, groups: 4, epsilon: 1e-5, momentum: 0.99, seed: 2, zeroInitLastGamma: true, name: undefined }).settings).to.include({ fixedPoint: 0, zeroInitLastGamma: true });
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

    it('refuses a misspelt option naming the nearest valid one (it built the default U-Net), and bad values naming the fix', () => {
      const cases: [object, RegExp][] = [
        [{ basechannels: 4 }, /^reversibleUNet3d: unknown option\(s\) 'basechannels' \(did you mean 'baseChannels'\?\)/],
        [{ blocksPerlevel: 1, levles: 2 }, /'blocksPerlevel' \(did you mean 'blocksPerLevel'\?\), 'levles' \(did you mean 'levels'\?\)/],
        [{ levels: '2' }, /option 'levels' must be an integer >= 1 \(e\.g\. 4\) \(got '2'\)/],
        [{ kernel: 4 }, /option 'kernel' must be an odd positive integer \(got 4\); use 3, 5, 7/],
        [{ dropPath: 1 }, /option 'dropPath' must be in \[0, 1\) \(got 1\); use 0 to turn stochastic depth off/],
        [{ depthwise3d: 'slice' }, /option 'depthwise3d' is 'slice'; use one of slices, blockDiagonal, perChannel/],
        [{ groups: 0 }, /option 'groups' must be an integer >= 1 \(got 0\)/],
        [{ seed: 'x' }, /option 'seed' must be an integer \(the seed of the weights\) \(got 'x'\)/],
        [{ name: 3 }, /option 'name' must be a non-empty string/],
      ];
      for (const [extra, message] of cases) expect(configError(() => reversibleUNet3d({ levels: 2, blocksPerLevel: 1, baseChannels: 4, ...extra } as never), JSON.stringify(extra)).message, JSON.stringify(extra)).to.match(message);
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

    it('weighs its terms by diceWeight and crossEntropyWeight', () => {
      const logits = tf.randomNormal([2, 4, 3], 0, 1, 'float32', 11);
      const y = tf.tensor2d([[0, 1, 2, 1], [2, 0, 0, 1]], [2, 4], 'int32');
      const at = (o: object) => diceCrossEntropy({ classes: 3, ...o })(y, logits).dataSync()[0];
      const ce = at({ diceWeight: 0 });
      const dice = at({ crossEntropyWeight: 0 });
      expect(ce).to.be.closeTo(tf.losses.softmaxCrossEntropy(tf.oneHot(tf.reshape(y, [-1]), 3), tf.reshape(logits, [-1, 3])).dataSync()[0], 1e-6);
      expect(at({})).to.be.closeTo(ce + dice, 1e-6);
      expect(at({ diceWeight: 2, crossEntropyWeight: 0.5 })).to.be.closeTo(2 * dice + 0.5 * ce, 1e-6);
    });

    it('refuses a misspelt option naming the nearest valid one (it trained with the default), and bad values naming the fix', () => {
      const cases: [object, RegExp][] = [
        [{ classes: 2, diceWieght: 0 }, /^diceCrossEntropy: unknown option\(s\) 'diceWieght' \(did you mean 'diceWeight'\?\)/],
        [{ classes: 2, crossentropyweight: 1 }, /'crossentropyweight' \(did you mean 'crossEntropyWeight'\?\)/],
        [{ classes: 2, smooth: -1 }, /option 'smooth' must be a number >= 0 .*\(got -1\)/],
        [{ classes: 2, smooth: '1' }, /option 'smooth' must be a finite number/],
        [{ classes: 2, diceWeight: -1 }, /option 'diceWeight' must be a number >= 0 \(the weight of the Dice term; 0 leaves it out\) \(got -1\)/],
        [{ classes: 2, crossEntropyWeight: Infinity }, /option 'crossEntropyWeight' must be a finite number/],
        [{ classes: 2, diceWeight: 0, crossEntropyWeight: 0 }, /options 'diceWeight' and 'crossEntropyWeight' are both 0.*give one of them a weight > 0/],
        [{ classes: 1 }, /option 'classes' must be an integer >= 2: the logits' class count/],
        [{}, /option 'classes' must be an integer >= 2.*\(got undefined\)/],
      ];
      for (const [options, message] of cases) expect(configError(() => diceCrossEntropy(options as never), JSON.stringify(options)).message, JSON.stringify(options)).to.match(message);
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
