// Masks (Embedding maskZero, Masking) reach the layers after them as in model.fit: a text
// model trains, evaluates and predicts as model.fit / model.evaluate / model.predict do,
// through the plain step and the memory executor alike.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { fromLayersModel, SilentLogger, Trainer, type TrainerOptions } from '../../src';
import { useBackend } from '../fixtures';
import { expectHistoryClose } from './helpers';

const N = 24;
const T = 6;
const V = 10;

/** Zero-padded token rows of 2 to 5 tokens, and a 0/1 label each. */
function paddedTokens(): { x: tf.Tensor2D; y: tf.Tensor2D } {
  const rows = Array.from({ length: N }, (_, i) => Array.from({ length: T }, (_, t) => (t < 2 + (i % 4) ? 1 + ((i * 3 + t * 5) % (V - 1)) : 0)));
  return { x: tf.tensor2d(rows, [N, T]), y: tf.tensor2d(rows.map((_, i) => [i % 2]), [N, 1]) };
}

const embedding = () => tf.layers.embedding({ inputDim: V, outputDim: 4, inputLength: T, maskZero: true });
const head = () => tf.layers.dense({ units: 1, activation: 'sigmoid' });

/** Models whose recurrent layers read a mask; each builds a fresh copy. */
const maskedModels: Record<string, () => tf.LayersModel> = {
  'embedding(maskZero) -> lstm': () => tf.sequential({ layers: [embedding(), tf.layers.lstm({ units: 5 }), head()] }),
  'embedding(maskZero) -> gru': () => tf.sequential({ layers: [embedding(), tf.layers.gru({ units: 5 }), head()] }),
  'embedding(maskZero) -> simpleRNN': () => tf.sequential({ layers: [embedding(), tf.layers.simpleRNN({ units: 5 }), head()] }),
  'embedding(maskZero) -> bidirectional(lstm, returnSequences) -> globalAveragePooling1d': () =>
    tf.sequential({ layers: [embedding(), tf.layers.bidirectional({ layer: tf.layers.lstm({ units: 3, returnSequences: true }) as tf.RNN }), tf.layers.globalAveragePooling1d({}), head()] }),
  'a functional chain: embedding(maskZero) -> lstm': () => {
    const input = tf.input({ shape: [T] });
    const h = tf.layers.lstm({ units: 5 }).apply(embedding().apply(input)) as tf.SymbolicTensor;
    return tf.model({ inputs: input, outputs: head().apply(h) as tf.SymbolicTensor });
  },
  'a Sequential holding embedding(maskZero), then an lstm': () => tf.sequential({ layers: [tf.sequential({ layers: [embedding()] }), tf.layers.lstm({ units: 5 }), head()] }),
};

/** masking({ maskValue: 0 }) -> lstm on float rows whose padded steps are zero. */
const maskingModel = () => tf.sequential({ layers: [tf.layers.masking({ inputShape: [T, 3], maskValue: 0 }), tf.layers.lstm({ units: 4 }), head()] });
const maskedFloats = (tokens: tf.Tensor2D) => tf.tidy(() => tf.mul(tf.randomNormal([N, T, 3], 0, 1, 'float32', 3), tf.expandDims(tf.cast(tf.notEqual(tokens, 0), 'float32'), 2)));

/** Two models with the same weights: one for model.fit, one for the trainer. */
function twins(build: () => tf.LayersModel): [tf.LayersModel, tf.LayersModel] {
  const reference = build();
  const model = build();
  model.setWeights(reference.getWeights());
  return [reference, model];
}

function expectWeightsClose(actual: tf.LayersModel, expected: tf.LayersModel, rtol = 1e-5): void {
  const a = actual.getWeights();
  expected.getWeights().forEach((w, i) => {
    const [x, e] = [a[i].dataSync(), w.dataSync()];
    e.forEach((v, j) => {
      if (!(Math.abs(x[j] - v) <= rtol * Math.max(Math.abs(v), 1e-3))) expect.fail(`${expected.weights[i].originalName}[${j}]: tapfit ${x[j]}, model.fit ${v}`);
    });
  });
}

const fitOptions = { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 as const };

async function expectFitAsModelFit(build: () => tf.LayersModel, x: tf.Tensor, y: tf.Tensor, extra: Partial<TrainerOptions> = {}): Promise<void> {
  const [reference, model] = twins(build);
  reference.compile({ loss: 'binaryCrossentropy', optimizer: 'sgd', metrics: ['accuracy'] });
  const expected = await reference.fit(x, y, fitOptions);
  const t = new Trainer({ model, loss: 'binaryCrossentropy', optimizer: 'sgd', metrics: ['accuracy'], logger: new SilentLogger(), ...extra });
  const h = await t.fit(x, y, fitOptions);
  expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
  expectWeightsClose(model, reference);
  t.dispose();
  reference.dispose();
  model.dispose();
}

describe('masks reach the layers after them, as in model.fit', () => {
  useBackend('cpu');

  for (const [name, build] of Object.entries(maskedModels)) {
    it(`${name}: fit gives model.fit's history and weights`, async () => {
      const { x, y } = paddedTokens();
      await expectFitAsModelFit(build, x, y);
      tf.dispose([x, y]);
    });
  }

  it("masking({ maskValue: 0 }) -> lstm: fit gives model.fit's history and weights", async () => {
    const { x: tokens, y } = paddedTokens();
    const x = maskedFloats(tokens);
    await expectFitAsModelFit(maskingModel, x, y);
    tf.dispose([tokens, x, y]);
  });

  it("the memory executor (memoryBudget) trains a masked model as model.fit does", async () => {
    const { x, y } = paddedTokens();
    const sample = { x: x.slice(0, 8), y: y.slice(0, 8) };
    await expectFitAsModelFit(maskedModels['embedding(maskZero) -> lstm'], x, y, { memoryBudget: { budgetBytes: 1e9, sample } });
    tf.dispose([x, y, sample.x, sample.y]);
  });

  it('predict and evaluate of a masked model equal model.predict and model.evaluate', async () => {
    const { x, y } = paddedTokens();
    for (const build of [maskedModels['embedding(maskZero) -> lstm'], maskedModels['embedding(maskZero) -> bidirectional(lstm, returnSequences) -> globalAveragePooling1d']]) {
      const model = build();
      model.compile({ loss: 'binaryCrossentropy', optimizer: 'sgd' });
      const t = new Trainer({ model, loss: 'binaryCrossentropy', optimizer: 'sgd', logger: new SilentLogger() });
      await t.setup();
      const [expected, actual] = [model.predict(x, { batchSize: 8 }) as tf.Tensor, t.predict(x, { batchSize: 8 })];
      expect(Array.from(actual.dataSync())).to.deep.equal(Array.from(expected.dataSync()));
      const [expectedLoss, loss] = [model.evaluate(x, y, { batchSize: 8 }) as tf.Scalar, t.evaluate(x, y, { batchSize: 8 }) as tf.Scalar];
      expect(loss.dataSync()[0]).to.be.closeTo(expectedLoss.dataSync()[0], 1e-6);
      tf.dispose([expected, actual, expectedLoss, loss]);
      t.dispose();
      model.dispose();
    }
    tf.dispose([x, y]);
  });

  it('a chain with a mask-making layer is one segment, saying why; without a mask it is split per layer', () => {
    const masked = maskedModels['embedding(maskZero) -> lstm']();
    const adapted = fromLayersModel(masked);
    expect(adapted.segments.length).to.equal(1);
    expect(adapted.unsplitReason).to.match(/Embedding '.*' makes a mask/);
    const plain = tf.sequential({ layers: [tf.layers.embedding({ inputDim: V, outputDim: 4, inputLength: T }), tf.layers.lstm({ units: 5, returnSequences: true }), tf.layers.lstm({ units: 5 }), head()] });
    const split = fromLayersModel(plain);
    expect(split.segments.map((s) => s.name)).to.deep.equal(plain.layers.map((l) => l.name));
    expect(split.unsplitReason).to.equal(undefined);
    [masked, plain].forEach((m) => m.dispose());
  });
});
