import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { Stage, type Trainer } from '../src';
import { blobData, testTrainer, tinyModel } from '../src/testing';

describe('trainer: stop()', () => {
  before(() => tf.setBackend('cpu'));

  it('mid-epoch returns after the current batch and leaves no tensor behind (the batch fetched next is freed)', async () => {
    const data = blobData(64);
    const before = tf.memory().numTensors;
    const model = tinyModel();
    const holder: { trainer?: Trainer } = {};
    const trainer = testTrainer({
      model,
      plugins: [{ name: 'stopper', core: '*', apply: ({ hooks }) => hooks.batchEnd.tap({ stage: Stage.LAST }, (i) => void (i.step + 1 >= 3 && holder.trainer!.stop())) }],
    });
    holder.trainer = trainer;
    await trainer.fit(data, { epochs: 2, batchSize: 8 });
    expect(trainer.step).to.equal(3);
    trainer.dispose();
    model.dispose();
    expect(tf.memory().numTensors).to.equal(before);
    data.dispose();
  });
});
