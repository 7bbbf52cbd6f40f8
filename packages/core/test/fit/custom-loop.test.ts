// trainStep as the port of a tfjs custom loop (`optimizer.minimize(() => loss(model(x), y))`
// over the same tensors each iteration): the caller's x and y are the caller's.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { SilentLogger, Trainer } from '../../src';
import { thrown, useBackend } from '../fixtures';
import { blobTensors, softmaxModel } from './helpers';

const mse = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.meanSquaredError(yTrue, yPred) as tf.Scalar;
const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

describe('trainStep in a custom loop (the port of optimizer.minimize)', () => {
  useBackend('cpu');

  it('trains on the same x and y every iteration, as optimizer.minimize does, and leaves them alone', async () => {
    const { x, y, labels } = blobTensors(32);
    const reference = softmaxModel(3);
    const ported = softmaxModel(3);
    const refOptimizer = tf.train.momentum(0.1, 0.9);
    const trainer = new Trainer({ model: ported, loss: mse, optimizer: tf.train.momentum(0.1, 0.9), logger: new SilentLogger() });
    await trainer.setup();
    let before = 0;
    const refLosses: number[] = [];
    const losses: number[] = [];
    for (let i = 0; i < 5; i++) {
      const refLoss = refOptimizer.minimize(() => mse(y, reference.apply(x, { training: true }) as tf.Tensor), true)!;
      refLosses.push(refLoss.dataSync()[0]);
      refLoss.dispose();
      const { loss } = trainer.trainStep({ x, y }, { epoch: 0, batch: i, step: trainer.step });
      losses.push(loss.dataSync()[0]);
      loss.dispose();
      expect(x.isDisposed || y.isDisposed, `iteration ${i}`).to.equal(false);
      if (i === 0) before = tf.memory().numTensors; // both optimizers made their momentum slots in the first step
    }
    expect(tf.memory().numTensors - before).to.equal(0); // the step's own handles are freed
    expect(trainer.step).to.equal(5);
    losses.forEach((l, i) => expect(l).to.be.closeTo(refLosses[i], 1e-6 * Math.max(1, refLosses[i])));
    const want = weights(reference);
    weights(ported).forEach((w, i) => w.forEach((v, j) => expect(v).to.be.closeTo(want[i][j], 1e-6)));
    trainer.dispose();
    tf.dispose([x, y, labels]);
    reference.dispose();
    ported.dispose();
  });

  it('a refused call leaves the tensors alone too, so the retry after setup() trains on them', async () => {
    const { x, y, labels } = blobTensors(16);
    const model = softmaxModel(4);
    const trainer = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger() });
    const before = tf.memory().numTensors;
    const err = thrown(() => trainer.trainStep({ x, y }, { epoch: 0, batch: 0, step: 0 }));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.contain('call `await trainer.setup()` (or fit) before trainStep()');
    expect(x.isDisposed || y.isDisposed).to.equal(false);
    expect(tf.memory().numTensors).to.equal(before);
    await trainer.setup();
    trainer.trainStep({ x, y }, { epoch: 0, batch: 0, step: 0 }).loss.dispose();
    expect(trainer.step).to.equal(1);
    trainer.dispose();
    expect(() => trainer.trainStep({ x, y }, { epoch: 0, batch: 1, step: 1 })).to.throw(/trainStep\(\) on a disposed trainer/);
    expect(x.isDisposed || y.isDisposed).to.equal(false);
    tf.dispose([x, y, labels]);
    model.dispose();
  });

  it('is refused from inside a fit of the same trainer or of its model (the update would land inside that epoch), leaving weights and tensors alone', async () => {
    const { x, y, labels } = blobTensors(16);
    const model = softmaxModel(4);
    const trainer = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger() });
    await trainer.setup();
    let seen: { code: string; message: string; stepBefore: number; stepAfter: number; same: boolean } | undefined;
    const tryStep = () => {
      const before = weights(model);
      const stepBefore = trainer.step;
      const err = thrown(() => trainer.trainStep({ x, y }, { epoch: 0, batch: 0, step: trainer.step }));
      seen = { code: err.code, message: err.message, stepBefore, stepAfter: trainer.step, same: JSON.stringify(weights(model)) === JSON.stringify(before) };
    };
    await trainer.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: { onBatchEnd: (batch) => (batch === 0 ? tryStep() : undefined) } });
    expect(seen).to.include({ code: 'TAPFIT_E_STATE', same: true });
    expect(seen!.stepAfter).to.equal(seen!.stepBefore);
    expect(seen!.message).to.contain('trainStep() was called while fit() runs on this trainer');
    // The oracle: tfjs's counterpart of trainStep, optimizer.minimize, runs inside model.fit; the refusal names it, not another API.
    const ref = tf.sequential({ layers: [tf.layers.dense({ inputShape: [x.shape[1]!], units: y.shape[1]!, activation: 'softmax' })] });
    ref.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy' });
    const ownOptimizer = tf.train.sgd(0.1);
    let minimized: number | undefined;
    await ref.fit(x, y, {
      epochs: 1, batchSize: 8, verbose: 0,
      callbacks: { onBatchEnd: async () => void (minimized ??= tf.tidy(() => ownOptimizer.minimize(() => tf.losses.softmaxCrossEntropy(y, ref.apply(x) as tf.Tensor) as tf.Scalar, true)!.dataSync()[0])) },
    });
    expect(minimized, 'optimizer.minimize inside model.fit').to.be.a('number');
    expect(seen!.message).to.contain('(optimizer.minimize allows this; tapfit refuses it').and.not.contain('model.trainOnBatch');
    ref.dispose();
    ownOptimizer.dispose();
    expect(trainer.step).to.equal(2); // fit's two steps only
    // model.fit on the same model: refused too (tfjs would let model.trainOnBatch run inside it).
    model.compile({ optimizer: 'sgd', loss: 'categoricalCrossentropy' });
    seen = undefined;
    await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: { onBatchEnd: async (batch) => (batch === 0 ? tryStep() : undefined) } });
    expect(seen).to.include({ code: 'TAPFIT_E_STATE', same: true });
    expect(seen!.message).to.contain('while another fit trains the model');
    expect(x.isDisposed || y.isDisposed).to.equal(false);
    trainer.dispose();
    tf.dispose([x, y, labels]);
    model.dispose();
  });

  it("a one-output model's rank-1 targets are reshaped on the step's own handle, not the caller's", async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [1], units: 1, kernelInitializer: 'ones' })] });
    const trainer = new Trainer({ model, loss: 'meanSquaredError', optimizer: 'sgd', logger: new SilentLogger() });
    await trainer.setup();
    const x = tf.tensor1d([1, 2, 3, 4]);
    const y = tf.tensor1d([2, 4, 6, 8]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 2; i++) trainer.trainStep({ x, y }, { epoch: 0, batch: i, step: i }).loss.dispose();
    expect(tf.memory().numTensors).to.equal(before);
    expect([x.shape, y.shape, x.isDisposed, y.isDisposed]).to.deep.equal([[4], [4], false, false]);
    trainer.dispose();
    tf.dispose([x, y]);
    model.dispose();
  });
});
