// A ported model.fit program and its model.compile lines: kept before the trainer (so
// model.evaluate and model.evaluateDataset work as before), or called again between fits
// (the fine-tuning recipe's lower learning rate), which the trainer does not take.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { Trainer } from '../../src';
import { useBackend } from '../fixtures';
import { blobTensors, recordingLogger, softmaxModel } from './helpers';

const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

describe('model.compile in a ported program', () => {
  useBackend('cpu');

  it('kept before the trainer: model.evaluate and model.evaluateDataset work after trainer.fit, equal to trainer.evaluate, without a warning', async () => {
    const { x, y, labels } = blobTensors(48);
    const model = softmaxModel(5);
    model.compile({ optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const logger = recordingLogger();
    const trainer = new Trainer({ model, optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'], logger });
    await trainer.fit(x, y, { epochs: 2, batchSize: 16, verbose: 0 });
    await trainer.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
    expect(logger.lines.filter((l) => l.startsWith('warn:'))).to.deep.equal([]);
    const [loss, acc] = model.evaluate(x, y, { batchSize: 16 }) as tf.Scalar[];
    const [tLoss, tAcc] = trainer.evaluate(x, y, { batchSize: 16 }) as tf.Scalar[];
    expect(loss.dataSync()[0]).to.be.closeTo(tLoss.dataSync()[0], 1e-6);
    expect(acc.dataSync()[0]).to.be.closeTo(tAcc.dataSync()[0], 1e-6);
    const ds = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(16);
    const [dsLoss] = (await model.evaluateDataset(ds as tf.data.Dataset<{}>, {})) as tf.Scalar[];
    expect(dsLoss.dataSync()[0]).to.be.closeTo(tLoss.dataSync()[0], 1e-6);
    tf.dispose([loss, acc, tLoss, tAcc, dsLoss, x, y, labels]);
    trainer.dispose();
    model.dispose();
  });

  it('called again between fits: one warning names a new Trainer; the trainer keeps its own optimizer (the same weights as without the compile)', async () => {
    const { x, y, labels } = blobTensors(48);
    const run = async (recompile: boolean) => {
      const model = softmaxModel(6);
      const logger = recordingLogger();
      const trainer = new Trainer({ model, optimizer: 'sgd', loss: 'categoricalCrossentropy', logger, seed: 3 });
      await trainer.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
      if (recompile) model.compile({ optimizer: tf.train.sgd(1.0), loss: 'meanSquaredError' });
      await trainer.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
      await trainer.fit(x, y, { epochs: 1, batchSize: 16, verbose: 0 });
      const out = { weights: weights(model), warnings: logger.lines.filter((l) => l.startsWith('warn:')) };
      trainer.dispose();
      model.dispose();
      return out;
    };
    const plain = await run(false);
    const recompiled = await run(true);
    expect(plain.warnings).to.deep.equal([]);
    expect(recompiled.warnings).to.have.length(1); // at the fit after the compile, not again
    expect(recompiled.warnings[0]).to.contain('model.compile() was called on the model after this trainer was built');
    expect(recompiled.warnings[0]).to.contain('build a new Trainer({ model, optimizer, loss })');
    expect(recompiled.weights).to.deep.equal(plain.weights);
    tf.dispose([x, y, labels]);
  });
});
