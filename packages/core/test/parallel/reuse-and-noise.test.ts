import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { dataParallel, sgd, SilentLogger, Trainer, type TapfitPlugin } from '../../src';
import { recordHostReads } from '../../src/testing';
import { thrown, useBackend } from '../fixtures';
import { batchFor, maxRelativeDifference, smallMlp } from './fixtures/models';

/** float32 sums in another order (the parts', then weighted): far below any real difference. */
const TOLERANCE = 1e-5;

/** Trains `steps` trainer steps on one batch; returns the losses and the final weights. */
async function train(model: tf.LayersModel, plugins: TapfitPlugin[], steps: number, n: number): Promise<{ losses: number[]; weights: Float32Array[]; trainer: Trainer }> {
  const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), logger: new SilentLogger(), plugins, seed: 3 });
  await trainer.setup();
  const batch = batchFor(model, n);
  const losses: number[] = [];
  try {
    for (let step = 0; step < steps; step++) {
      const r = trainer.trainStep(batch, { epoch: 0, batch: step, step });
      losses.push(r.loss.dataSync()[0]!);
      r.loss.dispose();
    }
  } finally {
    tf.dispose(batch);
  }
  return { losses, weights: model.weights.map((w) => w.read().dataSync() as Float32Array), trainer };
}

function expectSameTraining(a: { losses: number[]; weights: Float32Array[] }, b: { losses: number[]; weights: Float32Array[] }, what: string): void {
  expect(maxRelativeDifference(a.losses, b.losses), `${what}: losses`).to.be.below(TOLERANCE);
  b.weights.forEach((w, i) => expect(maxRelativeDifference(a.weights[i]!, w), `${what}: weight ${i}`).to.be.below(TOLERANCE));
}

/** Trains a model of `build` with dataParallel({ replicas }) and on one thread, 4 steps on n samples: the same losses and weights. */
async function expectSplitEqualsOneThread(build: () => tf.LayersModel, replicas: number, n: number, what: string): Promise<void> {
  const split = await train(build(), [dataParallel({ replicas })], 4, n);
  const oneThread = await train(build(), [], 4, n);
  expectSameTraining(split, oneThread, what);
  split.trainer.dispose();
  oneThread.trainer.dispose();
}

describe('dataParallel: a reused instance, dropout, read-backs', () => {
  useBackend('wasm');

  it("one live trainer per instance (core refuses a second, naming 'data-parallel'); once disposed, the instance trains a new trainer as one thread does", async () => {
    const reused = dataParallel();
    const first = await train(smallMlp(), [reused], 1, 16);
    const second = smallMlp();
    const err = thrown(() => new Trainer({ model: second, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1 }), logger: new SilentLogger(), plugins: [reused] }));
    expect(err.code).to.equal('TAPFIT_E_STATE');
    expect(err.message).to.contain("plugin 'data-parallel' is applied to another trainer that has not been disposed");
    first.trainer.dispose();
    const again = await train(second, [reused], 3, 17);
    const oneThread = await train(smallMlp(), [], 3, 17);
    expectSameTraining(again, oneThread, 'the reused instance against one thread');
    expect(again.trainer.describe({ print: false }).backprop?.provider).to.equal('data-parallel');
    again.trainer.dispose();
    oneThread.trainer.dispose();
  });

  for (const [what, replicas, n, options] of [
    ['Dropout, 2 replicas, an odd batch', 2, 31, {}],
    ['Dropout, 3 replicas', 3, 35, {}],
    ['Dropout with a noiseShape shared by the batch ([1, 16])', 3, 20, { noiseShape: [1, 16] as number[] }],
    // tfjs numbers an unnamed layer per build: the two builds below, and each replica's copy, must key its masks alike.
    ['an unnamed Dropout, 2 replicas', 2, 31, { name: undefined }],
  ] as const) {
    it(`${what}: each part draws the whole batch's mask rows, so the run equals one thread's (seeded by core's noise rule)`, async () => {
      const build = () =>
        tf.sequential({
          layers: [
            tf.layers.dense({ inputShape: [6], units: 16, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
            tf.layers.dropout({ name: 'drop', rate: 0.5, ...options }), // a mask's seed includes the layer's name, or its rank when unnamed
            tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
          ],
        });
      await expectSplitEqualsOneThread(build, replicas, n, what);
    });
  }

  for (const [what, noiseShape] of [
    ['GaussianNoise, GaussianDropout and AlphaDropout, 3 replicas, an odd batch', undefined],
    ["AlphaDropout's noiseShape shared by the batch ([1, 16])", [1, 16]],
  ] as const) {
    it(`${what}: each part draws the whole batch's noise rows, so the run equals one thread's (seeded by core's noise rule)`, async () => {
      const build = () =>
        tf.sequential({
          layers: [
            tf.layers.dense({ inputShape: [6], units: 16, activation: 'selu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
            tf.layers.gaussianNoise({ stddev: 0.3 }),
            tf.layers.gaussianDropout({ rate: 0.2 }),
            tf.layers.alphaDropout({ rate: 0.2, ...(noiseShape ? { noiseShape: [...noiseShape] } : {}) }),
            tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
          ],
        });
      await expectSplitEqualsOneThread(build, 3, 31, what);
    });
  }

  it('a Dropout applied twice in one forward (shared by two branches) draws a mask per application on each replica, so the run equals one thread\'s; no tensor leaks', async () => {
    // h -> drop(h) + drop(h) -> dense: one Dropout layer, two applications (draws 0 and 1 of core's noise rule).
    const build = () => {
      const input = tf.input({ shape: [6] });
      const h = tf.layers.dense({ units: 16, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }).apply(input) as tf.SymbolicTensor;
      const drop = tf.layers.dropout({ name: 'drop', rate: 0.5 });
      const both = tf.layers.add().apply([drop.apply(h) as tf.SymbolicTensor, drop.apply(h) as tf.SymbolicTensor]) as tf.SymbolicTensor;
      const output = tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }).apply(both) as tf.SymbolicTensor;
      return tf.model({ inputs: input, outputs: output });
    };
    const before = tf.memory().numTensors;
    const models = [build(), build()];
    const split = await train(models[0]!, [dataParallel({ replicas: 2 })], 4, 31);
    const oneThread = await train(models[1]!, [], 4, 31);
    expectSameTraining(split, oneThread, 'a shared Dropout');
    split.trainer.dispose();
    oneThread.trainer.dispose();
    models.forEach((m) => m.dispose());
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('a step after the first reads nothing back from the device (the batch-mean check runs on the first step, and on each fit\'s first)', async () => {
    const model = smallMlp();
    // A loss that reads no labels back (the class losses check each batch's labels on the host, one thread too), and no non-finite guard (it reads the loss).
    const trainer = new Trainer({ model, loss: 'meanSquaredError', optimizer: sgd({ lr: 0.1 }), logger: new SilentLogger(), plugins: [dataParallel()], nonFinite: 'off' });
    await trainer.setup();
    const { x, y: classes } = batchFor(model, 16);
    const batch = { x, y: tf.oneHot(classes as tf.Tensor1D, 3).toFloat() };
    classes.dispose();
    const perStep: number[] = [];
    try {
      for (let step = 0; step < 3; step++) {
        perStep.push(recordHostReads(() => tf.dispose(trainer.trainStep(batch, { epoch: 0, batch: step, step }).loss)).length);
      }
    } finally {
      tf.dispose(batch);
      trainer.dispose();
      model.dispose();
    }
    expect(perStep[0], 'the first step checks the loss').to.be.greaterThan(0);
    expect(perStep.slice(1)).to.deep.equal([0, 0]);
  });
});
