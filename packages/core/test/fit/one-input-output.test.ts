// tapfit trains models with one input and one output. A model with several, or x / y given
// as model.fit's list of tensors, is refused up front with TAPFIT_E_CONFIG naming the
// counts and the way on, not left to fail deep in tfjs or to train only the first head.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { SilentLogger, tensorData, TapfitError, Trainer } from '../../src';
import { useBackend } from '../fixtures';
import { softmaxModel } from './helpers';

function configError(fn: () => unknown): TapfitError {
  try {
    fn();
  } catch (err) {
    expect(err, String(err)).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
    return err as TapfitError;
  }
  return expect.fail('no error') as never;
}

async function rejection(p: Promise<unknown>): Promise<TapfitError> {
  const err = await p.then(
    () => expect.fail('no error'),
    (e: unknown) => e,
  );
  expect(err, String(err)).to.be.instanceOf(TapfitError);
  expect((err as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
  return err as TapfitError;
}

const trainerFor = (model: tf.LayersModel) => new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger() });

describe('one input and one output', () => {
  useBackend('cpu');

  it('a model with two inputs, or two outputs, is refused when the trainer is built, naming the counts and the alternatives', () => {
    const a = tf.input({ shape: [4] });
    const b = tf.input({ shape: [3] });
    const joined = tf.layers.concatenate().apply([tf.layers.dense({ units: 5 }).apply(a) as tf.SymbolicTensor, b]) as tf.SymbolicTensor;
    const twoInputs = tf.model({ inputs: [a, b], outputs: tf.layers.dense({ units: 3, activation: 'softmax' }).apply(joined) as tf.SymbolicTensor, name: 'two_in' });
    expect(configError(() => trainerFor(twoInputs)).message).to.match(/model 'two_in' has 2 inputs and 1 output; tapfit trains models with one input and one output.*model\.fit.*concatenate/);

    const x = tf.input({ shape: [4] });
    const h = tf.layers.dense({ units: 5, activation: 'tanh' }).apply(x) as tf.SymbolicTensor;
    const heads = [tf.layers.dense({ units: 3, activation: 'softmax' }).apply(h), tf.layers.dense({ units: 2 }).apply(h)] as tf.SymbolicTensor[];
    const twoOutputs = tf.model({ inputs: x, outputs: heads, name: 'two_out' });
    expect(configError(() => trainerFor(twoOutputs)).message).to.match(/model 'two_out' has 1 input and 2 outputs.*lossWeights/);
    twoInputs.dispose();
    twoOutputs.dispose();
  });

  it("x or y as model.fit's list of tensors is refused in fit, evaluate, predict and tensorData, naming the fix", async () => {
    const t = trainerFor(softmaxModel());
    const x = tf.randomNormal([8, 4], 0, 1, 'float32', 1);
    const y = tf.oneHot(tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32'), 3).toFloat();
    const before = tf.memory().numTensors;
    expect((await rejection(t.fit([x, x] as never, y, { verbose: 0 }))).message).to.match(/fit: x is a list of 2 tensor\(s\); tapfit trains models with one input and one output.*model\.fit/);
    expect((await rejection(t.fit(x, [y] as never, { verbose: 0 }))).message).to.match(/fit: y is a list of 1 tensor\(s\).*pass the tensor itself/);
    expect((await rejection(t.fit(x, y, { verbose: 0, validationData: [[x, x], y] as never }))).message).to.match(/fit: validationData's x is a list of 2 tensor/);
    // With arrays on the other side (fit makes a host source of arrays): the same refusal, not "bad arrays".
    const [xRows, yRows] = [x.arraySync(), y.arraySync()];
    expect((await rejection(t.fit([x, x] as never, yRows, { verbose: 0 }))).message).to.match(/fit: x is a list of 2 tensor\(s\); tapfit trains models with one input and one output.*model\.fit/);
    expect((await rejection(t.fit(xRows, [y] as never, { verbose: 0 }))).message).to.match(/fit: y is a list of 1 tensor\(s\).*pass the tensor itself/);
    expect((await rejection(t.fit(x, y, { verbose: 0, validationData: [xRows, [y]] as never }))).message).to.match(/fit: validationData's y is a list of 1 tensor\(s\).*pass the tensor itself/);
    await t.setup();
    expect(configError(() => t.evaluate(x, [y, y] as never)).message).to.match(/evaluate: y is a list of 2 tensor/);
    expect(configError(() => t.predict([x] as never)).message).to.match(/predict: x is a list of 1 tensor/);
    expect(configError(() => tensorData([x, x] as never, y)).message).to.match(/tensorData: x must be a tensor \(a list of 2: tapfit trains models with one input and one output/);
    expect(tf.memory().numTensors, 'nothing is left behind').to.equal(before);
    t.dispose();
    tf.dispose([x, y]);
  });
});
