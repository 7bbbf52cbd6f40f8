// A model with nothing trainable (every layer frozen, model.trainable = false, a segment
// model of frozen variables) is refused with TAPFIT_E_CONFIG naming `trainable`, at setup or
// at the step where the trainable set became empty, instead of tfjs's variableGrads() error;
// nothing is changed, so unfreezing lets the same trainer train as model.fit would.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { segmentModel, SilentLogger, tensorData, Trainer, type TrainerOptions } from '../../src';
import { counter, rejected, thrown, useBackend } from '../fixtures';
import { blobTensors, expectHistoryClose, softmaxModel } from './helpers';

const options = { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 as const };
const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
const trainerOptions = (model: tf.LayersModel, extra: Partial<TrainerOptions> = {}): TrainerOptions => ({ model, loss: 'categoricalCrossentropy', optimizer: 'adam', logger: new SilentLogger(), ...extra });

/** Every tensor in a chain state, read back. */
function stateValues(state: unknown): number[][] {
  if (state instanceof tf.Tensor) return [Array.from(state.dataSync())];
  return typeof state === 'object' && state !== null ? Object.values(state).flatMap(stateValues) : [];
}

describe('a model with nothing trainable', () => {
  useBackend('cpu');

  it('every layer frozen: fit, setup and trainOnBatch are refused naming layer.trainable and the layers, nothing leaks; unfrozen, the same trainer trains as model.fit', async () => {
    const { x, y, labels } = blobTensors(32);
    const model = softmaxModel();
    for (const l of model.layers) l.trainable = false;
    const t = new Trainer(trainerOptions(model));
    const tensors = tf.memory().numTensors;
    for (const call of [() => t.fit(x, y, options), () => t.setup(), () => t.trainOnBatch(x, y)]) {
      const err = await rejected(call());
      expect(err.code, err.message).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.match(new RegExp(`no trainable variables at setup: every layer with weights has trainable = false \\(${model.layers.map((l) => l.name).join(', ')}\\)`));
      expect(err.message).to.include('layer.trainable = true');
      expect(err.message).to.not.match(/variableGrads/);
    }
    expect(tf.memory().numTensors).to.equal(tensors);

    for (const l of model.layers) l.trainable = true;
    const reference = softmaxModel();
    reference.compile({ loss: 'categoricalCrossentropy', optimizer: 'adam' });
    expectHistoryClose((await t.fit(x, y, options)).history, (await reference.fit(x, y, options)).history as Record<string, number[]>);
    weightsOf(model).forEach((w, i) => w.forEach((v, j) => expect(v, `weight ${i}[${j}]`).to.be.closeTo(weightsOf(reference)[i]![j]!, 1e-6)));
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it("a frozen model's trainer refuses setup and evaluate too (evaluate sets the trainer up), naming the model's own model.evaluate and model.predict, which work on it", async () => {
    const { x, y, labels } = blobTensors(16);
    const model = softmaxModel();
    model.compile({ loss: 'categoricalCrossentropy', optimizer: 'adam' });
    for (const l of model.layers) l.trainable = false;
    const t = new Trainer(trainerOptions(model));
    const tensors = tf.memory().numTensors;
    // evaluate(x, y) is synchronous, as model.evaluate, and asks for setup first; setup says what to use instead.
    expect(thrown(() => t.evaluate(x, y)).message).to.include('call `await trainer.setup()` (or fit) first');
    for (const call of [() => t.setup(), () => t.evaluate(tensorData(x, y))]) {
      const err = await rejected(call());
      expect(err.code, err.message).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.include("use the model's own model.evaluate, model.predict and model.save for a frozen model");
    }
    expect(tf.memory().numTensors).to.equal(tensors);
    // What the message points to: tfjs evaluates and predicts a frozen model.
    const loss = model.evaluate(x, y) as tf.Scalar;
    const p = model.predict(x) as tf.Tensor;
    expect(Number.isFinite(loss.dataSync()[0]!)).to.equal(true);
    expect(p.shape).to.deep.equal(y.shape);
    t.dispose();
    tf.dispose([x, y, labels, loss, p]);
  });

  it('model.trainable = false is named as such; with a plugin, unfreezing runs setup afresh (its taps included) and trains', async () => {
    const { x, y, labels } = blobTensors(16);
    const model = softmaxModel();
    model.trainable = false;
    const plugin = counter();
    const t = new Trainer(trainerOptions(model, { plugins: [plugin] }));
    const err = await rejected(t.fit(x, y, options));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(/no trainable variables at setup: model\.trainable is false/);
    model.trainable = true;
    await t.fit(x, y, options);
    expect(plugin.seen).to.equal(4); // 2 epochs of 2 batches through the plugin's backward tap
    expect(Object.keys(t.variables)).to.have.length(4);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('a nested model frozen as a whole (base.trainable = false) is named, though its layers keep trainable = true; unfrozen, the same trainer trains as model.fit', async () => {
    const { x, y, labels } = blobTensors(16);
    const build = () => {
      const base = softmaxModel();
      return { base, model: tf.sequential({ layers: [base] }) };
    };
    const { base, model } = build();
    base.trainable = false; // tfjs freezes the weights; base.layers[i].trainable stays true
    expect(base.layers.every((l) => l.trainable), 'the oracle: tfjs leaves the inner flags').to.equal(true);
    const t = new Trainer(trainerOptions(model));
    const err = await rejected(t.setup());
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.include(`every layer with weights has trainable = false (${base.name})`);
    base.trainable = true;
    const reference = build();
    reference.model.setWeights(model.getWeights());
    reference.model.compile({ loss: 'categoricalCrossentropy', optimizer: 'adam' });
    expectHistoryClose((await t.fit(x, y, options)).history, (await reference.model.fit(x, y, options)).history as Record<string, number[]>);
    t.dispose();
    reference.model.dispose();
    model.dispose();
    tf.dispose([x, y, labels]);
  });

  it('a segment model whose variables are all frozen is refused naming variable.trainable', async () => {
    const w = tf.variable(tf.randomNormal([4, 3], 0, 0.1, 'float32', 1), false);
    const t = new Trainer({ model: segmentModel([{ name: 'linear', params: [w], forward: ([v]) => [tf.matMul(v!, w)] }], { inputShape: [4], outputShape: [3] }), loss: 'meanSquaredError', optimizer: 'sgd', logger: new SilentLogger() });
    const err = await rejected(t.setup());
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(/segment model has no trainable variables at setup/);
    expect(err.message).to.include('tf.variable(value, true)');
    t.dispose();
    w.dispose();
  });

  it('every layer frozen between fits: refused, nothing changed (weights, optimizer state); unfrozen, the run equals one that was never frozen', async () => {
    const { x, y, labels } = blobTensors(32);
    const model = softmaxModel();
    const straight = softmaxModel();
    const t = new Trainer(trainerOptions(model));
    const s = new Trainer(trainerOptions(straight));
    await t.fit(x, y, options);
    await s.fit(x, y, options);
    for (const l of model.layers) l.trainable = false;
    const weights = weightsOf(model);
    const state = stateValues(t.optimizerState);
    const tensors = tf.memory().numTensors;
    const err = await rejected(t.fit(x, y, options));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(/no trainable variables any more \(`trainable` was set since the last fit; nothing was changed\): every layer with weights has trainable = false/);
    expect(weightsOf(model)).to.deep.equal(weights);
    expect(stateValues(t.optimizerState)).to.deep.equal(state);
    expect(tf.memory().numTensors).to.equal(tensors);
    for (const l of model.layers) l.trainable = true;
    await t.fit(x, y, options);
    await s.fit(x, y, options);
    expect(weightsOf(model)).to.deep.equal(weightsOf(straight));
    t.dispose();
    s.dispose();
    tf.dispose([x, y, labels]);
  });

  it("every layer frozen between trainStep calls: refused, the caller's batch kept and nothing leaked; unfrozen, the loop goes on", async () => {
    const { x, y, labels } = blobTensors(8);
    const model = softmaxModel();
    const t = new Trainer(trainerOptions(model));
    await t.setup();
    t.trainStep({ x, y }, { epoch: 0, batch: 0, step: 0 }).loss.dispose();
    for (const l of model.layers) l.trainable = false;
    const tensors = tf.memory().numTensors;
    const err = thrown(() => t.trainStep({ x, y }, { epoch: 0, batch: 1, step: 1 }));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(/no trainable variables any more \(`trainable` was set since the last step/);
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(x.isDisposed || y.isDisposed).to.equal(false);
    for (const l of model.layers) l.trainable = true;
    const before = weightsOf(model);
    t.trainStep({ x, y }, { epoch: 0, batch: 1, step: 1 }).loss.dispose();
    expect(t.step).to.equal(2);
    expect(weightsOf(model)).to.not.deep.equal(before);
    t.dispose();
    tf.dispose([x, y, labels]);
  });
});
