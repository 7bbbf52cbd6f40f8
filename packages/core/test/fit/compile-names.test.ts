// Every name model.compile takes (optimizers, losses, metrics) trains and scores as tfjs does.

import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, LOSS_NAMES, METRIC_NAMES, OPTIMIZER_NAMES, SilentLogger, TapfitError, Trainer, type LossName } from '../../src';
import { useBackend } from '../fixtures';

/** A small regression net with seeded weights (the same weights every call). */
function regressionModel(): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [5], units: 6, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 11 }) }),
      tf.layers.dense({ units: 2, kernelInitializer: tf.initializers.glorotUniform({ seed: 12 }) }),
    ],
  });
}

const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

/** tfjs's own optimizer for a name, as model.compile builds it ('momentum' is not a compile name: tf.train's). */
const tfjsOptimizer = (name: string): tf.Optimizer | string => (name === 'momentum' ? tf.train.momentum(0.01, 0.9) : name);

describe('optimizer names: the chain trains as tfjs\'s own optimizer', () => {
  useBackend('cpu');

  const x = () => tf.randomNormal([32, 5], 0, 1, 'float32', 5);
  const y = () => tf.randomNormal([32, 2], 0, 1, 'float32', 6);

  for (const name of OPTIMIZER_NAMES) {
    it(`'${name}': 50 full-batch steps within 1e-5 relative of model.compile's`, async () => {
      const [xs, ys] = [x(), y()];
      const reference = regressionModel();
      reference.compile({ optimizer: tfjsOptimizer(name), loss: 'meanSquaredError' });
      await reference.fit(xs, ys, { epochs: 50, batchSize: 32, shuffle: false, verbose: 0 });

      const model = regressionModel();
      const start = weightsOf(model);
      const t = new Trainer({ model, loss: 'meanSquaredError', optimizer: name, logger: new SilentLogger() });
      await t.fit(xs, ys, { epochs: 50, batchSize: 32, shuffle: false, verbose: 0 });
      expect(t.step).to.equal(50);
      expect(t.describe({ print: false }).optimizer).to.equal('chain');

      const expected = weightsOf(reference);
      let moved = 0;
      weightsOf(model).forEach((w, i) => {
        // Relative to the weight tensor's scale, so entries near zero do not blow the ratio up.
        const scale = Math.max(...expected[i].map(Math.abs));
        w.forEach((v, j) => {
          moved = Math.max(moved, Math.abs(expected[i][j] - start[i][j]));
          if (!(Math.abs(v - expected[i][j]) <= 1e-5 * scale)) expect.fail(`weight ${i}[${j}]: tapfit ${v}, tfjs ${expected[i][j]}`);
        });
      });
      expect(moved, 'the weights moved').to.be.greaterThan(1e-3);
      t.dispose();
      reference.dispose();
      tf.dispose([xs, ys]);
    });
  }

  it("tfjs's capitalised names are accepted; an unknown name fails when the trainer is built, listing the names", () => {
    expect(() => new Trainer({ model: regressionModel(), loss: 'meanSquaredError', optimizer: 'RMSProp', logger: new SilentLogger() })).not.to.throw();
    const err = (() => {
      try {
        new Trainer({ model: regressionModel(), loss: 'meanSquaredError', optimizer: 'adamw', logger: new SilentLogger() });
      } catch (e) {
        return e as TapfitError;
      }
    })();
    expect(err).to.be.instanceOf(TapfitError);
    expect(err!.code).to.equal('TAPFIT_E_CONFIG');
    expect(err!.message).to.match(/unknown name 'adamw' \(did you mean 'adam'\?\)\. Accepted names: sgd, momentum, adam, adamax, rmsprop, adagrad, adadelta/);
  });

  it('a run with a named optimizer resumed from a checkpoint ends bit for bit as one straight through', async () => {
    const [xs, ys] = [x(), y()];
    const options = (epochs: number) => ({ epochs, batchSize: 8, verbose: 0 as const });
    const trainerOptions = () => ({ model: regressionModel(), loss: 'meanSquaredError' as const, optimizer: 'adamax', logger: new SilentLogger() });
    const straight = new Trainer(trainerOptions());
    await straight.fit(xs, ys, options(4));
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-named-'));
    const first = new Trainer(trainerOptions());
    await first.fit(xs, ys, options(2));
    await first.save(dir);
    const resumed = await Trainer.resume(dir, trainerOptions());
    await resumed.fit(xs, ys, options(4));
    expect(weightsOf(resumed.model.layersModel!)).to.deep.equal(weightsOf(straight.model.layersModel!));
    [straight, first, resumed].forEach((t) => t.dispose());
    tf.dispose([xs, ys]);
  });

  it('a chain plugin sees the members of a named optimizer (no TAPFIT_E_NEEDS_CHAIN)', async () => {
    let seen: string[] = [];
    const t = new Trainer({
      model: regressionModel(),
      loss: 'meanSquaredError',
      optimizer: 'rmsprop',
      logger: new SilentLogger(),
      plugins: [{ name: 'peek', core: '*', apply: ({ hooks }) => hooks.stepTransforms.tap('peek', (ts) => ((seen = ts.map((m) => m.name)), ts)) }],
    });
    await t.setup();
    expect(seen).to.deep.equal(['rms', 'lr']);
    expect(t.optimizerState!.rms).to.have.property('nu');
    t.dispose();
  });
});

describe('loss and metric names as model.compile', () => {
  useBackend('cpu');

  /** Targets each loss is defined on: probabilities, one-hot, {-1, 1}, positive counts. */
  const targets: Record<string, () => tf.Tensor> = {
    hinge: () => tf.sub(tf.mul(tf.oneHot(tf.tensor1d([0, 2, 1, 2, 0, 1], 'int32'), 3), 2), 1),
    squaredHinge: () => tf.sub(tf.mul(tf.oneHot(tf.tensor1d([0, 2, 1, 2, 0, 1], 'int32'), 3), 2), 1),
    sparseCategoricalCrossentropy: () => tf.tensor1d([0, 2, 1, 2, 0, 1]),
  };
  const oneHot = () => tf.oneHot(tf.tensor1d([0, 2, 1, 2, 0, 1], 'int32'), 3).toFloat();
  const softmaxNet = () =>
    tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) }),
      ],
    });

  const tfjsNames = LOSS_NAMES.filter((n) => n !== 'softmaxCrossEntropy' && n !== 'sigmoidCrossEntropy');
  for (const name of tfjsNames) {
    it(`loss '${name}' equals model.evaluate's`, async () => {
      const xs = tf.randomNormal([6, 4], 0, 1, 'float32', 9);
      const ys = (targets[name] ?? oneHot)();
      const model = softmaxNet();
      model.compile({ optimizer: 'sgd', loss: name });
      const expected = (model.evaluate(xs, ys) as tf.Scalar).dataSync()[0];
      const t = new Trainer({ model, loss: name as LossName, optimizer: 'sgd', logger: new SilentLogger() });
      await t.setup();
      const got = t.evaluate(xs, ys) as tf.Scalar;
      expect(got.dataSync()[0]).to.be.closeTo(expected, 1e-6 * Math.max(1, Math.abs(expected)));
      t.dispose();
      tf.dispose([xs, ys, got]);
    });
  }

  it("metric names give model.compile's keys and values ('accuracy' as 'acc', names as spelt)", async () => {
    const xs = tf.randomNormal([40, 4], 0, 1, 'float32', 9);
    const ys = tf.oneHot(tf.tensor1d(Array.from({ length: 40 }, (_, i) => (i * 5) % 3), 'int32'), 3).toFloat();
    const metrics = ['accuracy', 'mse', 'mae', 'MAPE', 'categoricalCrossentropy', 'precision', 'cosine', 'ce'];
    const model = softmaxNet();
    model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy', metrics });
    const reference = await model.fit(xs, ys, { epochs: 2, batchSize: 8, shuffle: false, validationSplit: 0.2, verbose: 0 });
    const fresh = softmaxNet();
    const t = new Trainer({ model: fresh, loss: 'categoricalCrossentropy', optimizer: 'sgd', metrics, logger: new SilentLogger() });
    const h = await t.fit(xs, ys, { epochs: 2, batchSize: 8, shuffle: false, validationSplit: 0.2, verbose: 0 });
    expect(Object.keys(h.history).sort()).to.deep.equal(Object.keys(reference.history).sort());
    for (const k of Object.keys(reference.history)) {
      (reference.history[k] as number[]).forEach((e, i) => expect(h.history[k][i], `${k}[${i}]`).to.be.closeTo(e, 1e-5 * Math.max(1, Math.abs(e))));
    }
    t.dispose();
    // A lone metric, as model.compile takes it ('accuracy', not ['accuracy']).
    const single = softmaxNet();
    single.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy', metrics: 'accuracy' });
    const alone = await single.fit(xs, ys, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 });
    const t2 = new Trainer({ model: softmaxNet(), loss: 'categoricalCrossentropy', optimizer: 'sgd', metrics: 'accuracy', logger: new SilentLogger() });
    const h2 = await t2.fit(xs, ys, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 });
    expect(Object.keys(h2.history).sort()).to.deep.equal(Object.keys(alone.history).sort());
    expect(h2.history.acc[0]).to.be.closeTo(alone.history.acc[0] as number, 1e-6);
    t2.dispose();
    tf.dispose([xs, ys]);
  });

  it('a { name, fn } metric whose fn returns one value per sample is averaged as model.fit averages the same function (train, val_ and evaluate)', async () => {
    const xs = tf.randomNormal([40, 4], 0, 1, 'float32', 9);
    const ys = tf.oneHot(tf.tensor1d(Array.from({ length: 40 }, (_, i) => (i * 5) % 3), 'int32'), 3).toFloat();
    // Per-sample, as every tf.metrics function and a Keras-style custom metric: top-2 accuracy, [N].
    const top2 = (yTrue: tf.Tensor, yPred: tf.Tensor): tf.Tensor => tf.cast(tf.any(tf.equal(tf.topk(yPred, 2).indices, tf.expandDims(tf.argMax(yTrue, -1), -1)), -1), 'float32');
    const options = { epochs: 2, batchSize: 8, shuffle: false, validationSplit: 0.2, verbose: 0 as const };
    const model = softmaxNet();
    model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy', metrics: ['accuracy', top2] });
    const reference = await model.fit(xs, ys, options); // model.fit logs a function metric by its name: 'top2'
    const t = new Trainer({ model: softmaxNet(), loss: 'categoricalCrossentropy', optimizer: 'sgd', metrics: ['accuracy', { name: 'top2', fn: top2 }], logger: new SilentLogger() });
    const h = await t.fit(xs, ys, options);
    expect(Object.keys(h.history).sort()).to.deep.equal(Object.keys(reference.history).sort());
    for (const k of Object.keys(reference.history)) {
      (reference.history[k] as number[]).forEach((e, i) => expect(h.history[k][i], `${k}[${i}]`).to.be.closeTo(e, 1e-6));
    }
    const expected = model.evaluate(xs, ys) as tf.Scalar[];
    const got = t.evaluate(xs, ys) as tf.Scalar[];
    expect(got[2].dataSync()[0]).to.be.closeTo(expected[2].dataSync()[0], 1e-6);
    t.dispose();
    tf.dispose([xs, ys, ...expected, ...got]);
  });

  it('sparseCategoricalCrossentropy, loss and metric, trains on the int32 class indices fit and arrayData make of a label list as model.fit on the same indices as floats', async () => {
    const labels = Array.from({ length: 24 }, (_, i) => (i * 5) % 3);
    const xs = tf.randomNormal([24, 4], 0, 1, 'float32', 9);
    const metrics = ['accuracy', 'sparseCategoricalCrossentropy'];
    const options = { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 as const };
    const model = softmaxNet();
    model.compile({ optimizer: 'sgd', loss: 'sparseCategoricalCrossentropy', metrics });
    const floats = tf.tensor1d(labels); // model.fit floors float indices; tfjs's own loss refuses int32 ones
    const reference = await model.fit(xs, floats, options);
    const indices = tf.tensor1d(labels, 'int32');
    const data = arrayData({ x: Array.from(xs.dataSync()), xShape: [4], y: labels });
    const forms: [string, (t: Trainer) => Promise<{ history: Record<string, number[]> }>][] = [
      ['a label list', (t) => t.fit(xs, labels, options)],
      ['an int32 tensor', (t) => t.fit(xs, indices, options)],
      ['arrayData', (t) => t.fit(data, options)],
    ];
    for (const [form, fit] of forms) {
      const t = new Trainer({ model: softmaxNet(), loss: 'sparseCategoricalCrossentropy', optimizer: 'sgd', metrics, logger: new SilentLogger() });
      const h = await fit(t);
      expect(Object.keys(h.history).sort(), form).to.deep.equal(Object.keys(reference.history).sort());
      for (const k of Object.keys(reference.history)) {
        (reference.history[k] as number[]).forEach((e, i) => expect(h.history[k][i], `${form}: ${k}[${i}]`).to.be.closeTo(e, 1e-5 * Math.max(1, Math.abs(e))));
      }
      t.dispose();
    }
    data.dispose();
    tf.dispose([xs, floats, indices]);
  });

  it('evaluate(x, y) reads a label list as fit does (class indices, int32): a loss that one-hots its labels scores the list as the int32 tensor', async () => {
    const labels = [0, 2, 1, 2, 0, 1];
    const xs = tf.randomNormal([6, 4], 0, 1, 'float32', 9);
    const oneHotLoss = (y: tf.Tensor, p: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(y as tf.Tensor1D, 3), p) as tf.Scalar;
    const t = new Trainer({ model: softmaxNet(), loss: oneHotLoss, optimizer: 'sgd', logger: new SilentLogger() });
    await t.fit(xs, labels, { epochs: 1, verbose: 0 }); // fit makes the list int32 class indices
    const indices = tf.tensor1d(labels, 'int32');
    const expected = t.evaluate(xs, indices) as tf.Scalar;
    const got = t.evaluate(xs, labels) as tf.Scalar;
    expect(got.dataSync()[0]).to.equal(expected.dataSync()[0]);
    t.dispose();
    tf.dispose([xs, indices, expected, got]);
  });

  it('binary problems: accuracy thresholds probabilities at 0.5 (logits at 0 with sigmoidCrossEntropy)', async () => {
    const xs = tf.randomNormal([30, 4], 0, 1, 'float32', 2);
    const ys = tf.tensor2d(Array.from({ length: 30 }, (_, i) => [i % 2]));
    const net = (activation?: 'sigmoid') =>
      tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 1, activation, kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }) })] });
    const reference = net('sigmoid');
    reference.compile({ optimizer: 'sgd', loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    const [, refAcc] = reference.evaluate(xs, ys) as tf.Scalar[];
    for (const [loss, model] of [['binaryCrossentropy', net('sigmoid')], ['sigmoidCrossEntropy', net()]] as const) {
      const t = new Trainer({ model, loss, optimizer: 'sgd', metrics: ['acc'], logger: new SilentLogger() });
      await t.setup();
      const [, acc] = t.evaluate(xs, ys) as tf.Scalar[];
      expect(acc.dataSync()[0], loss).to.equal(refAcc.dataSync()[0]);
      t.dispose();
    }
    tf.dispose([xs, ys]);
  });

  it('unknown loss and metric names are errors listing what is accepted', () => {
    const build = (o: object) => () => new Trainer({ model: softmaxNet(), loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger(), ...o });
    expect(build({ loss: 'categoricalCrossEntropy' })).to.throw(TapfitError, /unknown loss 'categoricalCrossEntropy' \(did you mean 'categoricalCrossentropy'\?\)\. Use one of softmaxCrossEntropy, sigmoidCrossEntropy, categoricalCrossentropy, sparseCategoricalCrossentropy/);
    expect(build({ metrics: ['accuracy', 'acuracy'] })).to.throw(TapfitError, /metrics\[1\]: unknown metric 'acuracy' \(did you mean 'accuracy'\?\)\. Accepted names: accuracy, acc, crossentropy, ce, binaryAccuracy/);
    expect(build({ metrics: ['acc', 'accuracy'] })).to.throw(TapfitError, /the name 'acc' is used twice/);
    expect(METRIC_NAMES).to.include.members(['accuracy', 'acc', 'categoricalAccuracy', 'sparseCategoricalAccuracy', 'binaryAccuracy', 'mse', 'meanSquaredError', 'mae', 'meanAbsoluteError']);
  });
});
