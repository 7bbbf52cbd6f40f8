// The trainer's lifecycle when users call its methods at times of their own choosing:
// fits that overlap, a fit next to model.fit on the same model, a disposed trainer, a save
// started in a callback and not awaited, saves that overlap, stop() from a timer.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { SilentLogger, Trainer, sgd, WRITER_LOCK, type TrainerOptions } from '../src';
import { blobs, rejected, tinyMlp, tinyTrainer, tmpDir, useBackend } from './fixtures';

const values = (t: tf.Tensor) => Array.from(t.dataSync());
const weightsOf = (t: Trainer) => Object.values(t.variables).map(values);

describe('trainer lifecycle: overlapping and late calls', () => {
  useBackend('cpu');

  it('a second fit while one runs is refused; the first trains as if alone', async () => {
    const data = blobs(32);
    const alone = tinyTrainer({ seed: 3 });
    await alone.fit(data, { epochs: 2, batchSize: 8 });
    const t = tinyTrainer({ seed: 3 });
    const first = t.fit(data, { epochs: 2, batchSize: 8 });
    const err = await rejected(t.fit(data, { epochs: 2, batchSize: 8 }));
    expect(err.code).to.equal('TAPFIT_E_STATE');
    expect(err.message).to.match(/fit\(\) is already running on this trainer\. Await it/);
    const history = await first;
    expect(history.epoch).to.deep.equal([0, 1]);
    expect(t.step).to.equal(8);
    expect(t.position).to.deep.equal({ epoch: 2, batch: 0 });
    expect(weightsOf(t)).to.deep.equal(weightsOf(alone));
    await t.fit(data, { epochs: 1, batchSize: 8 }); // free again once the first has returned
    expect(t.step).to.equal(12);
    [alone, t].forEach((x) => x.dispose());
    data.dispose();
  });

  it('a fit and model.fit, or two trainers, on one model at once: the later one is refused', async () => {
    const model = tinyMlp(4);
    model.compile({ optimizer: tf.train.sgd(0.1), loss: 'sparseCategoricalCrossentropy' });
    const data = blobs(32);
    const t = tinyTrainer({ model });
    const other = tinyTrainer({ model });
    const running = t.fit(data, { epochs: 1, batchSize: 8 });
    let modelFitError: Error | undefined;
    await model.fit(data.x, data.y, { epochs: 1, batchSize: 8, verbose: 0 }).catch((e) => (modelFitError = e));
    expect(modelFitError?.message).to.match(/another fit\(\) call is ongoing/);
    const err = await rejected(other.fit(data, { epochs: 1, batchSize: 8 }));
    expect(err.message).to.match(/the model is being trained by another fit \(model\.fit, or another Trainer on the same model\)/);
    await running;
    await other.fit(data, { epochs: 1, batchSize: 8 }); // the flag is cleared when the fit returns
    expect(other.step).to.equal(4);
    [t, other].forEach((x) => x.dispose());
    model.dispose();
    data.dispose();
  });

  it('a disposed trainer refuses every use, naming the fix (a rebuilt setup would have reset the optimizer state); dispose() twice is harmless', async () => {
    const data = blobs(16);
    const t = tinyTrainer();
    await t.fit(data, { epochs: 1, batchSize: 8 });
    t.dispose();
    t.dispose();
    const dir = tmpDir();
    for (const [what, call] of [
      ['fit()', () => t.fit(data, { epochs: 1, batchSize: 8 })],
      ['save()', () => t.save(dir)],
      ['setup()', () => t.setup()],
      ['evaluate()', () => t.evaluate(data)],
    ] as [string, () => Promise<unknown>][]) {
      const err = await rejected(Promise.resolve().then(call));
      expect(err.code, what).to.equal('TAPFIT_E_STATE');
      expect(err.message).to.contain(`${what} on a disposed trainer. Build a new Trainer (or Trainer.resume from a checkpoint)`);
    }
    const before = tf.memory().numTensors;
    expect(() => t.predict(tf.zeros([1, 4]))).to.throw(/predict\(\) on a disposed trainer/);
    const batch = { x: tf.zeros([2, 4]), y: tf.tensor1d([0, 1], 'int32') };
    expect(() => t.trainStep(batch, { epoch: 0, batch: 0, step: 0 })).to.throw(/trainStep\(\) on a disposed trainer/);
    expect(tf.memory().numTensors - before).to.equal(3); // predict's zeros and the batch: trainStep leaves the caller's tensors alone
    tf.dispose([batch.x, batch.y]);
    expect(fs.readdirSync(dir)).to.deep.equal([]);
    data.dispose();
  });

  it('dispose() while a fit runs is refused, naming stop(); the fit completes', async () => {
    const data = blobs(32);
    const t = tinyTrainer();
    const running = t.fit(data, { epochs: 1, batchSize: 8 });
    expect(() => t.dispose()).to.throw(/dispose\(\) was called while fit\(\) runs\. Call stop\(\), await the fit, then dispose\(\)/);
    let inCallback: Error | undefined;
    await running;
    await t.fit(data, {
      epochs: 1,
      batchSize: 8,
      callbacks: {
        onBatchEnd: async () => {
          try {
            t.dispose();
          } catch (e) {
            inCallback ??= e as Error;
          }
        },
      },
    });
    expect(inCallback?.message).to.match(/while fit\(\) runs/);
    expect(t.step).to.equal(8);
    t.dispose();
    data.dispose();
  });

  it('a save started in a callback and not awaited holds one step\'s state: resuming it equals training straight through (black-box Adam)', async () => {
    const options = (): TrainerOptions => ({ model: tinyMlp(7), loss: 'softmaxCrossEntropy', optimizer: tf.train.adam(0.05), logger: new SilentLogger(), seed: 5 });
    const data = blobs(48);
    const straight = new Trainer(options());
    await straight.fit(data, { epochs: 2, batchSize: 8 });
    const dir = tmpDir();
    const t = new Trainer(options());
    let pending: Promise<string> | undefined;
    await t.fit(data, {
      epochs: 2,
      batchSize: 8,
      callbacks: { onBatchEnd: async (batch: number) => void (batch === 2 && !pending ? (pending = t.save(dir)) : undefined) },
    });
    const saved = await pending!;
    expect(path.basename(saved)).to.equal('step-3');
    const resumed = await Trainer.resume(dir, options());
    await resumed.fit(data, { epochs: 2, batchSize: 8 });
    expect(weightsOf(resumed)).to.deep.equal(weightsOf(straight));
    [straight, t, resumed].forEach((x) => x.dispose());
    data.dispose();
  });

  it('dispose() while a save reads the state is refused; after the save it frees everything', async () => {
    const data = blobs(16);
    const t = tinyTrainer();
    await t.fit(data, { epochs: 1, batchSize: 8 });
    const before = tf.memory().numTensors;
    const saving = t.save(tmpDir());
    expect(() => t.dispose()).to.throw(/dispose\(\) was called while save\(\) reads the state it would free\. Await the save/);
    expect(path.basename(await saving)).to.equal('step-2');
    t.dispose();
    expect(tf.memory().numTensors).to.be.lessThan(before); // the chain's momentum freed
    data.dispose();
  });

  it('saves to one folder that overlap run one after another: each completes and LATEST names the last', async () => {
    const data = blobs(16);
    const t = tinyTrainer();
    await t.fit(data, { epochs: 1, batchSize: 8 });
    const dir = tmpDir();
    const written = await Promise.all([t.save(dir), t.save(dir), t.save(dir)]);
    expect(written.map((d) => path.basename(d))).to.deep.equal(['step-2', 'step-2.1', 'step-2.2']);
    expect(fs.readFileSync(path.join(dir, 'LATEST'), 'utf8').trim()).to.equal('step-2.2');
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.')), "no temporary entry, only the live trainer's lock").to.deep.equal([WRITER_LOCK]);
    const resumed = await Trainer.resume(dir, { model: tinyMlp(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), logger: new SilentLogger() });
    expect(weightsOf(resumed)).to.deep.equal(weightsOf(t));
    [t, resumed].forEach((x) => x.dispose());
    data.dispose();
  });

  it('save() to, and resume() from, a path that is a file: TAPFIT_E_CHECKPOINT naming the fix', async () => {
    const file = path.join(tmpDir(), 'afile');
    fs.writeFileSync(file, 'not a folder');
    const t = tinyTrainer();
    for (const target of [file, path.join(file, 'ckpt')]) {
      const err = await rejected(t.save(target));
      expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message).to.match(/it is a file, or lies under one\. Pass a folder path for checkpoints/);
    }
    const err = await rejected(Trainer.resume(file, { model: tinyMlp(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1 }), logger: new SilentLogger() }));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(/it is a file, not a checkpoint folder/);
    t.dispose();
  });

  it('stop() from a timer takes effect during a long fit (the event loop turns between steps)', async () => {
    const data = blobs(64);
    const t = tinyTrainer();
    const epochs = 100_000; // hours of training if the timer never ran
    let stepAtStop = -1;
    setTimeout(() => ((stepAtStop = t.step), t.stop()), 20);
    const history = await t.fit(data, { epochs, batchSize: 8 });
    expect(stepAtStop).to.be.greaterThan(0);
    expect(t.step - stepAtStop).to.be.at.most(1); // fit returned after the batch that was running
    expect(history.epoch.length).to.be.lessThan(epochs);
    expect(t.position.epoch).to.be.lessThan(epochs);
    t.dispose();
    data.dispose();
  });
});
