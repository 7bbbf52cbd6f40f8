// evaluateStart / evaluateEnd: a plugin swaps its evaluation weights (an EMA's) in around
// fit's validation and every evaluate(), and back; training goes on on the raw weights.

import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, Trainer, trainableVariables, type NamedTensors, type TapfitPlugin } from '../src';
import { blobData, testTrainerOptions, tinyModel } from '../src/testing';
import { rejected, thrown, tmpDir, useBackend } from './fixtures';
import { emaOnly, emaSwap } from './fixtures/ema-swap';

const values = (vs: readonly tf.Variable[]) => vs.map((v) => Array.from(v.dataSync()));

/** The oracle: the mean softmax cross-entropy of a fresh tfjs model holding `weights` (in the model's variable order), over all of x. */
function lossWith(weights: tf.Tensor[], x: tf.Tensor, y: tf.Tensor): number {
  const model = tinyModel({ seed: 9 });
  model.setWeights(weights);
  const loss = tf.tidy(() => tf.losses.softmaxCrossEntropy(tf.oneHot(y as tf.Tensor1D, 3), model.predict(x) as tf.Tensor).dataSync()[0]);
  model.dispose();
  return loss;
}

describe('evaluateStart / evaluateEnd: evaluation weights swapped in around validation and evaluate()', () => {
  useBackend('cpu');

  it("fit's val_* are those of the swapped-in EMA weights, while training goes on on the raw weights (loss and weights equal a run without the swap)", async () => {
    const data = blobData(48);
    const validation = blobData(24, { seed: 2 });
    const seen: string[] = [];
    const swapped = new Trainer(testTrainerOptions({ plugins: [emaSwap(seen)] }));
    // The oracle run: the same EMA member, no swap; its EMA weights are evaluated by hand at each epoch end.
    const plain = new Trainer(testTrainerOptions({ plugins: [emaOnly()] }));
    const emaLosses: number[] = [];
    const vx = validation.x;
    const vy = validation.y;
    const ours = await swapped.fit(data, { epochs: 3, batchSize: 8, validationData: validation });
    const theirs = await plain.fit(data, {
      epochs: 3,
      batchSize: 8,
      validationData: validation,
      callbacks: {
        onEpochEnd: () => {
          const shadow = plain.optimizerState!.ema.shadow as NamedTensors;
          emaLosses.push(lossWith(trainableVariables(plain.model).map((v) => shadow[v.name]), vx, vy));
        },
      },
    });
    expect(ours.history.loss).to.deep.equal(theirs.history.loss); // training saw the raw weights
    expect(values(trainableVariables(swapped.model))).to.deep.equal(values(trainableVariables(plain.model)));
    ours.history.val_loss.forEach((v, i) => {
      expect(v, `val_loss[${i}]: the EMA weights'`).to.be.closeTo(emaLosses[i], 1e-6);
      expect(Math.abs(v - theirs.history.val_loss[i]), `val_loss[${i}] is not the raw weights'`).to.be.greaterThan(1e-4);
    });
    expect(seen).to.deep.equal(['start validation 0', 'end validation 0', 'start validation 1', 'end validation 1', 'start validation 2', 'end validation 2']);

    // evaluate(), both forms, also with the EMA weights; the raw weights are back afterwards.
    const raw = values(trainableVariables(swapped.model));
    const shadow = swapped.optimizerState!.ema.shadow as NamedTensors;
    const expected = lossWith(trainableVariables(swapped.model).map((v) => shadow[v.name]), vx, vy);
    const scalar = swapped.evaluate(vx, vy) as tf.Scalar;
    expect(scalar.dataSync()[0]).to.be.closeTo(expected, 1e-6);
    expect((await swapped.evaluate(validation)).loss).to.be.closeTo(expected, 1e-6);
    expect(values(trainableVariables(swapped.model))).to.deep.equal(raw);
    expect(seen.slice(6)).to.deep.equal(['start evaluate', 'end evaluate', 'start evaluate', 'end evaluate']);
    scalar.dispose();
    swapped.dispose();
    plain.dispose();
    data.dispose();
    validation.dispose();
  });

  it('evaluateEnd runs when the evaluation throws, so the raw weights are back; a save() during an evaluation waits for them', async () => {
    const data = blobData(32);
    const seen: string[] = [];
    let fail = false;
    const failing = (_y: tf.Tensor, p: tf.Tensor) => {
      if (fail) throw new Error('metric failed');
      return tf.mean(p);
    };
    const trainer = new Trainer(testTrainerOptions({ plugins: [emaSwap(seen)], metrics: [{ name: 'failing', fn: failing }] }));
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    const raw = values(trainableVariables(trainer.model));
    fail = true;
    expect(thrown(() => trainer.evaluate(data.x, data.y)).message).to.equal('metric failed');
    expect((await rejected(trainer.evaluate(data))).message).to.equal('metric failed');
    expect(seen).to.deep.equal(['start evaluate', 'end evaluate', 'start evaluate', 'end evaluate']);
    expect(values(trainableVariables(trainer.model))).to.deep.equal(raw);
    fail = false;
    // A save started while evaluate(data) has the EMA weights in (between its batches) writes the raw ones.
    const dir = tmpDir();
    const evaluation = trainer.evaluate(data, { batchSize: 8 });
    const saved = trainer.save(dir);
    await Promise.all([evaluation, saved]);
    trainer.dispose();
    const resumed = await Trainer.resume(dir, testTrainerOptions({ plugins: [emaSwap()], metrics: [{ name: 'failing', fn: failing }] }));
    expect(values(trainableVariables(resumed.model))).to.deep.equal(raw);
    resumed.dispose();
    data.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the taps are synchronous (they also run inside evaluate(x, y)): one that returns a promise is refused naming the plugin', async () => {
    const data = blobData(16);
    const asyncTap: TapfitPlugin = { name: 'async-swap', core: '*', apply: ({ hooks }) => hooks.evaluateStart.tap('async-swap', (async () => undefined) as unknown as () => void) };
    const trainer = new Trainer(testTrainerOptions({ plugins: [asyncTap] }));
    const err = await rejected(trainer.fit(data, { epochs: 1, batchSize: 8, validationData: data }));
    expect(err.code).to.equal(ErrorCodes.PLUGIN_FAILED);
    expect(err.message).to.match(/plugin 'async-swap' returned a promise from hook 'evaluateStart', which is synchronous/);
    trainer.dispose();
    data.dispose();
  });
});
