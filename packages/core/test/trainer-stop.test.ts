import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { modelVariables, Stage, type TapfitPlugin, type Trainer } from '../src';
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

describe('TrainerView.stop(): a plugin ends the fit (early stopping)', () => {
  before(() => tf.setBackend('cpu'));

  /** Stops once `epochs` epochs have ended, as an early-stopping plugin whose patience ran out. */
  const stopAfter = (epochs: number): TapfitPlugin => ({
    name: 'early-stopping',
    core: '*',
    apply: ({ hooks, trainer }) => hooks.epochEnd.tap('early-stopping', ({ epoch }) => void (epoch + 1 >= epochs && trainer.stop())),
  });
  /** A setup tap that rebuilds the model as a functional copy (as LoRA does), so the trainer trains another model than the one passed in. */
  const rebuild = (): TapfitPlugin => ({
    name: 'rebuild',
    core: '*',
    apply: ({ hooks }) =>
      hooks.setup.tap('rebuild', (ctx) => {
        const copy = tinyModel({ seed: 7 });
        copy.setWeights(ctx.model.layersModel!.getWeights());
        ctx.replaceModel(tf.model({ inputs: copy.inputs, outputs: copy.outputs }));
      }),
  });
  const weights = (t: Trainer) => modelVariables(t.model).map((v) => Array.from(v.dataSync()));

  for (const [label, extra] of [['the model as given', []], ['a model rebuilt at setup (LoRA-style)', [rebuild]]] as const) {

    it(`at an epoch end ends the fit with that epoch complete: history, fitEnd, position and weights equal a fit of that many epochs (${label})`, async () => {
      const data = blobData(48);
      const validation = blobData(24, { seed: 2 });
      const seenAtFitEnd: number[][] = [];
      const fitEndProbe: TapfitPlugin = { name: 'fit-end-probe', core: '*', apply: ({ hooks }) => hooks.fitEnd.tap('fit-end-probe', ({ history }) => void seenAtFitEnd.push(history.epoch)) };
      const stopped = testTrainer({ metrics: ['accuracy'], plugins: [...extra.map((p) => p()), stopAfter(3), fitEndProbe] });
      const got = await stopped.fit(data, { epochs: 8, batchSize: 8, validationData: validation });
      // The oracle: the same trainer asked for 3 epochs.
      const straight = testTrainer({ metrics: ['accuracy'], plugins: extra.map((p) => p()) });
      const expected = await straight.fit(data, { epochs: 3, batchSize: 8, validationData: validation });
      expect(got.epoch).to.deep.equal([0, 1, 2]);
      expect(got.history).to.deep.equal(expected.history); // loss, acc, val_loss, val_acc of every epoch run
      expect(seenAtFitEnd).to.deep.equal([[0, 1, 2]]);
      expect(stopped.position).to.deep.equal({ epoch: 3, batch: 0 });
      expect(stopped.step).to.equal(straight.step);
      expect(weights(stopped)).to.deep.equal(weights(straight));
      stopped.dispose();
      straight.dispose();
      data.dispose();
      validation.dispose();
    });
  }

  it('from batchEnd ends the fit after that step, as trainer.stop() does; the next fit continues the epoch', async () => {
    const data = blobData(64);
    let stopAt = 5;
    const stopper: TapfitPlugin = { name: 'stopper', core: '*', apply: ({ hooks, trainer }) => hooks.batchEnd.tap('stopper', () => void (trainer.step === stopAt && trainer.stop())) };
    const stopped = testTrainer({ plugins: [stopper] });
    const first = await stopped.fit(data, { epochs: 2, batchSize: 8 });
    expect(stopped.step).to.equal(5);
    expect(stopped.position).to.include({ epoch: 0, batch: 5 });
    expect(first.epoch).to.deep.equal([]); // the epoch is unfinished
    stopAt = -1;
    await stopped.fit(data, { epochs: 2, batchSize: 8 });
    const straight = testTrainer();
    await straight.fit(data, { epochs: 2, batchSize: 8 });
    expect(weights(stopped)).to.deep.equal(weights(straight));
    stopped.dispose();
    straight.dispose();
    data.dispose();
  });
});
