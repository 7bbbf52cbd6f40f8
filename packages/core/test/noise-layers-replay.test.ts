import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { fromLayersModel, losses, noiseKey, noiseSeed, SegmentExecutor, sgd, SilentLogger, Trainer, type MemoryPolicy, type SegmentContext, type TrainableModel } from '../src';
import { blobs, useBackend } from './fixtures';
import { planOf, requestOf, toArrays } from './memory/models';

/**
 * tfjs's GaussianNoise, GaussianDropout and AlphaDropout draw their noise without a seed;
 * in a training forward tapfit draws it by core's noise rule (`noiseSeed(ctx, name, draw)`).
 * Oracles: tfjs's formulas written out here with noise drawn from that seed, the layers'
 * distributions (and tfjs's own unseeded output's), the same step stored instead of
 * recomputed, tfjs's inference (no noise).
 */
describe("tfjs's Gaussian noise layers are seeded in a training forward", () => {
  useBackend('cpu');

  const ctxOf = (serial: number, recomputing = false): SegmentContext => ({ training: true, recomputing, step: serial, noiseKey: noiseKey(7, serial) });
  const values = (t: tf.Tensor) => Array.from(t.dataSync());
  const maxDiff = (a: tf.Tensor, b: tf.Tensor) => tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]!);

  /**
   * SELU's constants (the SNN paper's), as AlphaDropout uses them. tfjs 4.22 sets a dropped
   * value to -alphaP (its `(kept - 1) * alphaP`; Keras sets alphaP), then maps x to a x + b:
   * tapfit keeps tfjs's result, so `dropped` is the value tfjs gives a dropped input.
   */
  const ALPHA_P = -1.6732632423543772 * 1.0507009873554805;
  const alphaAffine = (rate: number) => {
    const a = 1 / Math.sqrt((1 - rate) * (1 + rate * ALPHA_P * ALPHA_P));
    const b = -a * ALPHA_P * rate;
    return { a, b, dropped: a * -ALPHA_P + b };
  };

  /** Each layer, and its training output written by hand from the noise the rule's seed draws. */
  const cases: { what: string; layer: () => tf.layers.Layer; reference: (x: tf.Tensor, seed: number) => tf.Tensor }[] = [
    {
      what: 'GaussianNoise (x + N(0, stddev))',
      layer: () => tf.layers.gaussianNoise({ stddev: 0.3, name: 'noise' }),
      reference: (x, seed) => tf.add(x, tf.randomNormal(x.shape, 0, 0.3, 'float32', seed)),
    },
    {
      what: 'GaussianDropout (x * N(1, sqrt(rate / (1 - rate))))',
      layer: () => tf.layers.gaussianDropout({ rate: 0.2, name: 'noise' }),
      reference: (x, seed) => tf.mul(x, tf.randomNormal(x.shape, 1, Math.sqrt(0.2 / 0.8), 'float32', seed)),
    },
    {
      what: "AlphaDropout (kept: a x + b; dropped: tfjs's a (-alphaP) + b)",
      layer: () => tf.layers.alphaDropout({ rate: 0.3, name: 'noise' }),
      reference: (x, seed) => {
        const { a, b, dropped } = alphaAffine(0.3);
        const kept = tf.greaterEqual(tf.randomUniform(x.shape, 0, 1, 'float32', seed), 0.3);
        return tf.where(kept, tf.add(tf.mul(x, a), b), tf.fill(x.shape, dropped));
      },
    },
  ];

  const oneLayer = (layer: tf.layers.Layer, width = 16) => fromLayersModel(tf.sequential({ layers: [tf.layers.inputLayer({ inputShape: [width] }), layer] }));

  for (const c of cases) {
    describe(c.what, () => {
      it("the training output is tfjs's formula with the noise drawn from noiseSeed(ctx, name, 0); no tensor leaks", () => {
        const model = oneLayer(c.layer());
        const x = tf.randomNormal([8, 16], 0, 1, 'float32', 3);
        const before = tf.memory().numTensors;
        const [out] = model.segments[0].forward([x], ctxOf(0));
        expect(tf.memory().numTensors).to.equal(before + 1);
        const ref = c.reference(x, noiseSeed(ctxOf(0), 'noise', 0));
        expect(maxDiff(out, ref)).to.be.below(1e-5);
        // The noise is live (the test can fail): the output is not the input.
        expect(maxDiff(out, x)).to.be.above(1e-3);
        tf.dispose([x, out, ref]);
        model.layersModel!.dispose();
      });

      it('a replay with the same context is bitwise equal, another batch draws other noise', () => {
        const model = oneLayer(c.layer());
        const x = tf.randomNormal([8, 16], 0, 1, 'float32', 4);
        const first = model.segments[0].forward([x], ctxOf(0))[0];
        const replay = model.segments[0].forward([x], ctxOf(0, true))[0];
        const other = model.segments[0].forward([x], ctxOf(1))[0];
        expect(values(replay)).to.deep.equal(values(first));
        expect(values(other)).to.not.deep.equal(values(first));
        tf.dispose([x, first, replay, other]);
        model.layersModel!.dispose();
      });

      it("inference is tfjs's: the input unchanged, in a segment and in model.predict", () => {
        const model = oneLayer(c.layer());
        const x = tf.randomNormal([8, 16], 0, 1, 'float32', 5);
        const [inferred] = model.segments[0].forward([x], { training: false, recomputing: false, step: 0 });
        const predicted = model.layersModel!.predict(x) as tf.Tensor;
        expect(values(inferred)).to.deep.equal(values(x));
        expect(values(predicted)).to.deep.equal(values(x));
        tf.dispose([x, inferred, predicted]);
        model.layersModel!.dispose();
      });
    });
  }

  describe("the distribution is the layer's, as tfjs's own unseeded training call draws it (6 sigma bounds)", () => {
    const N = 200 * 1000;
    const stats = (t: tf.Tensor) => tf.tidy(() => {
      const { mean, variance } = tf.moments(t);
      return { mean: mean.dataSync()[0]!, std: Math.sqrt(variance.dataSync()[0]!) };
    });
    /** The seeded output and tfjs's unseeded one, for input `x`. */
    const bothOutputs = (layer: tf.layers.Layer, x: tf.Tensor) => {
      const model = oneLayer(layer, 200);
      const seeded = model.segments[0].forward([x], ctxOf(0))[0];
      const tfjs = model.layersModel!.apply(x, { training: true }) as tf.Tensor;
      return { outputs: [seeded, tfjs], dispose: () => (tf.dispose([seeded, tfjs]), model.layersModel!.dispose()) };
    };

    it('GaussianNoise on zeros: mean 0, std stddev', () => {
      const x = tf.zeros([1000, 200]);
      const run = bothOutputs(tf.layers.gaussianNoise({ stddev: 0.3 }), x);
      for (const out of run.outputs) {
        const { mean, std } = stats(out);
        expect(Math.abs(mean)).to.be.below((6 * 0.3) / Math.sqrt(N));
        expect(Math.abs(std - 0.3)).to.be.below((6 * 0.3) / Math.sqrt(2 * N));
      }
      run.dispose();
      x.dispose();
    });

    it('GaussianDropout on ones: mean 1, std sqrt(rate / (1 - rate))', () => {
      const x = tf.ones([1000, 200]);
      const run = bothOutputs(tf.layers.gaussianDropout({ rate: 0.2 }), x);
      const sd = Math.sqrt(0.2 / 0.8);
      for (const out of run.outputs) {
        const { mean, std } = stats(out);
        expect(Math.abs(mean - 1)).to.be.below((6 * sd) / Math.sqrt(N));
        expect(Math.abs(std - sd)).to.be.below((6 * sd) / Math.sqrt(2 * N));
      }
      run.dispose();
      x.dispose();
    });

    it("AlphaDropout on zeros: two values, b (kept) and tfjs's dropped value (a fraction rate)", () => {
      const rate = 0.3;
      const { b, dropped: droppedValue } = alphaAffine(rate);
      const x = tf.zeros([1000, 200]);
      const run = bothOutputs(tf.layers.alphaDropout({ rate }), x);
      for (const out of run.outputs) {
        const v = out.dataSync();
        const dropped = v.filter((u) => Math.abs(u - droppedValue) < 1e-5).length;
        const kept = v.filter((u) => Math.abs(u - b) < 1e-5).length;
        expect(dropped + kept).to.equal(N);
        expect(Math.abs(dropped / N - rate)).to.be.below(6 * Math.sqrt((rate * (1 - rate)) / N));
      }
      run.dispose();
      x.dispose();
    });
  });

  it("AlphaDropout with a noiseShape draws that shape (a column's mask shared by the batch), as tfjs's call does", () => {
    const model = oneLayer(tf.layers.alphaDropout({ rate: 0.5, noiseShape: [1, 16], name: 'noise' }));
    const x = tf.randomNormal([8, 16], 0, 1, 'float32', 6);
    const [out] = model.segments[0].forward([x], ctxOf(0));
    const { a, b } = alphaAffine(0.5);
    const ref = tf.tidy(() => {
      const kept = tf.cast(tf.greaterEqual(tf.randomUniform([1, 16], 0, 1, 'float32', noiseSeed(ctxOf(0), 'noise', 0)), 0.5), 'float32');
      return tf.add(tf.mul(tf.add(tf.mul(x, kept), tf.mul(tf.sub(1, kept), -ALPHA_P)), a), b);
    });
    expect(maxDiff(out, ref)).to.be.below(1e-5);
    tf.dispose([x, out, ref]);
    model.layersModel!.dispose();
  });

  it("a rate outside (0, 1) draws nothing in training, as tfjs's call: GaussianDropout and AlphaDropout return the input", () => {
    for (const layer of [tf.layers.gaussianDropout({ rate: 0 }), tf.layers.alphaDropout({ rate: 1 })]) {
      const model = oneLayer(layer);
      const x = tf.randomNormal([4, 16], 0, 1, 'float32', 7);
      const [out] = model.segments[0].forward([x], ctxOf(0));
      const tfjs = model.layersModel!.apply(x, { training: true }) as tf.Tensor;
      expect(values(out)).to.deep.equal(values(x));
      expect(values(tfjs)).to.deep.equal(values(x));
      tf.dispose([x, out, tfjs]);
      model.layersModel!.dispose();
    }
  });

  it('a GaussianNoise applied twice in one forward (shared) draws 0 and 1 of the rule, and a replay redraws both', () => {
    const input = tf.input({ shape: [16] });
    const noise = tf.layers.gaussianNoise({ stddev: 1, name: 'noise' });
    const both = tf.layers.concatenate().apply([noise.apply(input) as tf.SymbolicTensor, noise.apply(input) as tf.SymbolicTensor]) as tf.SymbolicTensor;
    const layers = tf.model({ inputs: input, outputs: both });
    const [segment] = fromLayersModel(layers).segments;
    const x = tf.zeros([4, 16]);
    const out = segment.forward([x], ctxOf(0))[0];
    const [first, second] = tf.split(out, 2, 1);
    const draws = [0, 1].map((draw) => tf.randomNormal([4, 16], 0, 1, 'float32', noiseSeed(ctxOf(0), 'noise', draw)));
    expect(values(second)).to.not.deep.equal(values(first));
    // Which application tfjs's graph runs first is tfjs's order: either matches.
    const matches = (order: number[]) => maxDiff(first, draws[order[0]]) < 1e-6 && maxDiff(second, draws[order[1]]) < 1e-6;
    expect(matches([0, 1]) || matches([1, 0])).to.equal(true);
    const replay = segment.forward([x], ctxOf(0, true))[0];
    expect(values(replay)).to.deep.equal(values(out));
    tf.dispose([x, out, first, second, replay, ...draws]);
    layers.dispose();
  });

  describe('training', () => {
    /** dense -> each noise layer -> dense: the three layers in one chain. */
    const noisyMlp = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ units: 16, inputShape: [4], activation: 'selu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), name: 'd1' }),
          tf.layers.gaussianNoise({ stddev: 0.3, name: 'noise' }),
          tf.layers.gaussianDropout({ rate: 0.2, name: 'gdrop' }),
          tf.layers.alphaDropout({ rate: 0.2, name: 'adrop' }),
          tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), name: 'head' }),
        ],
      });

    function executorStep(model: TrainableModel, x: tf.Tensor, y: tf.Tensor, policy: (name: string) => MemoryPolicy, ctx: SegmentContext) {
      const vars = [...new Set(model.segments.flatMap((s) => s.params))];
      const r = new SegmentExecutor().compute(requestOf(model, planOf(model, policy), x, y, losses.softmaxCrossEntropy, { variables: vars, ctx }));
      const out = { value: r.value.dataSync()[0], grads: toArrays(r.grads) };
      tf.dispose([r.value, ...Object.values(r.grads)]);
      return out;
    }

    it("the memory executor recomputes the noise segments (they are replayable): gradients equal storing them; no tensor leaks", () => {
      const model = fromLayersModel(noisyMlp());
      expect(model.segments.map((s) => s.notReplayable)).to.deep.equal([undefined, undefined, undefined, undefined, undefined]);
      const x = tf.randomNormal([6, 4], 0, 1, 'float32', 3);
      const y = tf.tensor1d([0, 1, 2, 1, 0, 2], 'int32');
      const before = tf.memory().numTensors;
      const stored = executorStep(model, x, y, () => 'store', ctxOf(0));
      const recomputed = executorStep(model, x, y, (n) => (n === 'head' ? 'store' : 'recompute'), ctxOf(0));
      expect(tf.memory().numTensors).to.equal(before);
      expect(recomputed.value).to.equal(stored.value);
      expect(recomputed.grads).to.deep.equal(stored.grads);
      // The noise is live (the test can fail): another batch draws other noise.
      expect(executorStep(model, x, y, () => 'store', ctxOf(1)).grads).to.not.deep.equal(stored.grads);
      tf.dispose([x, y]);
      model.layersModel!.dispose();
    });

    const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));
    const trainer = (seed: number) => new Trainer({ model: noisyMlp(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), logger: new SilentLogger(), seed });

    it("two trainers with one seed train to bitwise equal weights, another seed to others; predict and evaluate draw no noise", async () => {
      const data = blobs(32);
      const runs = [];
      for (const seed of [3, 3, 4]) {
        const t = trainer(seed);
        await t.fit(data, { epochs: 2, batchSize: 8, shuffle: false }); // unshuffled: the seed reaches only the noise
        runs.push(weights(t));
        if (seed === 4) {
          // Inference is tfjs's: the noise layers pass their input through (model.predict, the oracle, draws none).
          const x = tf.randomNormal([5, 4], 0, 1, 'float32', 8);
          const y = tf.tensor1d([0, 1, 2, 1, 0], 'int32');
          const [mine, tfjs, again] = [t.predict(x), t.model.layersModel!.predict(x) as tf.Tensor, t.predict(x)];
          expect(values(mine)).to.deep.equal(values(tfjs));
          expect(values(again)).to.deep.equal(values(mine));
          const loss = t.evaluate(x, y) as tf.Scalar;
          const byHand = losses.softmaxCrossEntropy(y, tfjs);
          expect(Math.abs(loss.dataSync()[0]! - byHand.dataSync()[0]!)).to.be.below(1e-6);
          tf.dispose([x, y, mine, tfjs, again, loss, byHand]);
        }
        t.model.layersModel!.dispose();
        t.dispose();
      }
      expect(runs[1]).to.deep.equal(runs[0]);
      expect(runs[2]).to.not.deep.equal(runs[0]);
      data.dispose();
    });
  });
});
