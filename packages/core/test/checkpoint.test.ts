import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { adamw, sgd, Trainer, SilentLogger, WRITER_LOCK, type TapfitPlugin, type TrainerOptions } from '../src';
import { writeCheckpointDir } from '../src/checkpoint/atomic-dir';
import { blobs, checkpointOptions, counter, tinyMlp, tmpDir, useBackend, rejected as errorOf } from './fixtures';

const tmp = tmpDir;
const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));

export function resumeIsExact(backend: string): void {
  describe(`checkpoints on ${backend}`, () => {
    useBackend(backend);

    // N = 16 steps (4 epochs of 4 batches), cut at N/2 = 8 and at 5. tf.train.adam's setWeights
    // recomputes its beta powers as pow(beta, t + 1) where training multiplies them up step by
    // step; the two differ in the last bit at most t, and at t = 5 (beta2 = 0.999) that changes
    // the weights unless the saved powers are restored.
    for (const [label, optimizer] of [
      ['sgd + momentum + weight decay', () => sgd({ lr: 0.05, momentum: 0.9, weightDecay: 1e-3 })],
      ['adamw', () => adamw({ lr: 0.01, weightDecay: 0.01 })],
      ['black-box tf.train.adam', () => tf.train.adam(0.01)],
    ] as const) {
      for (const stopAt of [8, 5]) {
        it(`16 steps straight through equal ${stopAt} steps, save, resume and train on, bitwise (${label})`, async () => {
          const options = (): TrainerOptions => ({ model: tinyMlp(5), loss: 'softmaxCrossEntropy', optimizer: optimizer(), logger: new SilentLogger(), seed: 11, plugins: [counter()] });
          const data = blobs(32);
          const straight = new Trainer(options());
          const straightHistory = await straight.fit(data, { epochs: 4, batchSize: 8 });
          expect(straight.step).to.equal(16);

          const dir = tmp();
          // Train stopAt steps, then save and abandon this trainer.
          const interrupted = new Trainer({ ...options(), plugins: [counter(), { name: 'stop-at', core: '^0.1.0', apply: ({ hooks, trainer }) => hooks.batchEnd.tap('stop-at', () => void (trainer.step === stopAt && interruptedRef.t!.stop())) }] });
          const interruptedRef: { t?: Trainer } = { t: interrupted };
          await interrupted.fit(data, { epochs: 4, batchSize: 8 });
          expect(interrupted.step).to.equal(stopAt);
          expect(interrupted.position.epoch * 4 + interrupted.position.batch).to.equal(stopAt);
          await interrupted.save(dir);

          const resumed = await Trainer.resume(dir, { ...options(), plugins: [counter(), { name: 'stop-at', core: '^0.1.0', apply: () => {} }] });
          expect(resumed.step).to.equal(stopAt);
          const resumedHistory = await resumed.fit(data, { epochs: 4, batchSize: 8 });
          expect(resumed.step).to.equal(straight.step);
          expect(weights(resumed)).to.deep.equal(weights(straight));
          // The epochs logged after the resume, the one cut by the stop included (its sums so far are in the checkpoint), as straight through.
          const first = Math.floor(stopAt / 4);
          expect(resumedHistory.epoch).to.deep.equal([0, 1, 2, 3].slice(first));
          expect(resumedHistory.history.loss).to.deep.equal(straightHistory.history.loss.slice(first));
          const [a, b] = [straight.plugins[0] as ReturnType<typeof counter>, resumed.plugins[0] as ReturnType<typeof counter>];
          expect(b.seen).to.equal(a.seen);
          expect(b.sum!.dataSync()[0]).to.equal(a.sum!.dataSync()[0]);
          for (const t of [straight, interrupted, resumed]) t.dispose();
          data.dispose();
        });
      }
    }
  });
}

describe('a checkpoint saved inside an epoch (by a batchEnd tap, training going on)', () => {
  useBackend('cpu');

  it("holds that epoch's batching and sums so far: the resumed run logs the same epoch means as straight through, and refuses another batch size or sample count", async () => {
    const options = (plugins: TapfitPlugin[] = []): TrainerOptions => ({ model: tinyMlp(5), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05, momentum: 0.9 }), metrics: ['accuracy'], logger: new SilentLogger(), seed: 3, plugins });
    const data = blobs(32);
    const dir = tmp();
    const saver: TapfitPlugin = { name: 'save-at-6', core: '^0.1.0', apply: ({ hooks, trainer }) => hooks.batchEnd.tap('save-at-6', async () => void (trainer.step === 6 && (await holder.t!.save(dir)))) };
    const holder: { t?: Trainer } = {};
    const straight = (holder.t = new Trainer(options([saver])));
    const h = await straight.fit(data, { epochs: 3, batchSize: 8 });
    const resumed = await Trainer.resume(dir, options());
    expect(resumed.position).to.include({ epoch: 1, batch: 2 });
    await resumed.fit(data, { epochs: 3, batchSize: 4 }).then(
      () => expect.fail('continued the epoch with another batch size'),
      (e: Error) => expect(e.message).to.match(/epoch 1 was stopped after 2 batch\(es\) run with batchSize 8, shuffle true/),
    );
    // Another sample count shuffles another order: refused too (it trained some samples twice, others not at all).
    const more = blobs(40);
    await resumed.fit(more, { epochs: 3, batchSize: 8 }).then(
      () => expect.fail('continued the epoch on data of another size'),
      (e: Error) => expect(e.message).to.match(/epoch 1 was stopped after 2 batch\(es\) of data holding 32 samples, and this fit's data holds 40 .*initialEpoch: 2/),
    );
    more.dispose();
    const rest = await resumed.fit(data, { epochs: 3, batchSize: 8 });
    expect(rest.epoch).to.deep.equal([1, 2]);
    expect(rest.history.loss).to.deep.equal(h.history.loss.slice(1));
    expect(rest.history.acc).to.deep.equal(h.history.acc.slice(1));
    expect(weights(resumed)).to.deep.equal(weights(straight));
    for (const t of [straight, resumed]) t.dispose();
    data.dispose();
  });
});

resumeIsExact('cpu');
resumeIsExact('wasm');

describe('resume with another seed in the options', () => {
  useBackend('cpu');

  it("continues with the checkpoint's seed, builds one trainer and applies each plugin once", async () => {
    const data = blobs(32);
    let applied = 0;
    const once = (): TapfitPlugin => ({ name: 'once', core: '^0.1.0', apply: () => void applied++ });
    const options = (seed: number): TrainerOptions => ({ model: tinyMlp(5), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05, momentum: 0.9 }), logger: new SilentLogger(), seed, plugins: [once()] });
    const straight = new Trainer(options(11));
    await straight.fit(data, { epochs: 2, batchSize: 8 });
    const first = new Trainer(options(11));
    await first.fit(data, { epochs: 1, batchSize: 8 });
    const dir = tmp();
    await first.save(dir);
    applied = 0;
    const warnings: string[] = [];
    const before = tf.memory().numTensors;
    const resumed = await Trainer.resume(dir, { ...options(99), logger: { info: () => {}, warn: (m) => warnings.push(m) } });
    expect(applied).to.equal(1);
    expect(resumed.seed).to.equal(11);
    expect(warnings.join('\n')).to.match(/resuming with the checkpoint's seed 11, not options.seed 99/);
    await resumed.fit(data, { epochs: 2, batchSize: 8 });
    expect(weights(resumed)).to.deep.equal(weights(straight));
    resumed.dispose();
    expect(tf.memory().numTensors).to.be.at.most(before + 4); // the resumed model's own weights only (tinyMlp: 4)
    for (const t of [straight, first]) t.dispose();
    data.dispose();
  });
});

describe('checkpoint safety', () => {
  useBackend('cpu');
  const options = checkpointOptions;

  async function savedRun(): Promise<{ dir: string; trainer: Trainer }> {
    const dir = tmp();
    const data = blobs(16);
    const trainer = new Trainer(options());
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    await trainer.save(dir);
    data.dispose();
    return { dir, trainer };
  }

  it('a checkpoint of a finished schedule resumes with nothing left to train; a fit of the same trainer again trains again', async () => {
    const options = (): TrainerOptions => ({ model: tinyMlp(5), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05 }), logger: new SilentLogger(), seed: 11 });
    const data = blobs(32);
    const done = new Trainer(options());
    await done.fit(data, { epochs: 2, batchSize: 8 });
    const dir = tmp();
    await done.save(dir);
    const resumed = await Trainer.resume(dir, options());
    const h = await resumed.fit(data, { epochs: 2, batchSize: 8 });
    expect(h.epoch, 'the schedule was complete').to.deep.equal([]);
    expect(resumed.step).to.equal(8);
    expect(weights(resumed)).to.deep.equal(weights(done));
    const again = await done.fit(data, { epochs: 2, batchSize: 8 });
    expect(again.epoch, 'model.fit habit: the same call trains 2 more epochs').to.deep.equal([2, 3]);
    expect(done.step).to.equal(16);
    for (const t of [done, resumed]) t.dispose();
    data.dispose();
  });

  describe('the first fit after Trainer.resume, in the two patterns the README shows', () => {
    const options = (logger: { info: () => void; warn: (m: string) => void } = new SilentLogger()): TrainerOptions => ({ model: tinyMlp(5), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05, momentum: 0.9 }), logger, seed: 11 });
    /** 4 epochs of 4 batches straight through: the reference. */
    const straight = async (data: ReturnType<typeof blobs>) => {
      const t = new Trainer(options());
      await t.fit(data, { epochs: 4, batchSize: 8 });
      const w = weights(t);
      t.dispose();
      return w;
    };
    /** Trains `fit` until `stopAt` steps, saves, and returns the folder. */
    const cut = async (data: ReturnType<typeof blobs>, stopAt: number, fit: (t: Trainer, stop: tf.CustomCallbackArgs) => Promise<void>) => {
      const t = new Trainer(options());
      await fit(t, { onBatchEnd: async () => void (t.step >= stopAt && t.stop()) });
      const dir = tmp();
      await t.save(dir);
      t.dispose();
      return dir;
    };

    const loopCases = [
      ['fit({ epochs: 1 })', 6],
      ['fit({ epochs: 1 })', 8],
      ['fit({ initialEpoch: e, epochs: e + 1 })', 6],
      ['fit({ initialEpoch: e, epochs: e + 1 })', 8],
      ['fit({ initialEpoch: e, epochs: e + 1 })', 4],
    ] as const;
    for (const [form, stopAt] of loopCases) {
      it(`a loop of ${form} from trainer.position.epoch goes on one epoch per call (cut at step ${stopAt}${stopAt % 4 ? ', mid-epoch' : ', at an epoch end'})`, async () => {
        const data = blobs(32);
        const epochOptions = (e: number) => (form === 'fit({ epochs: 1 })' ? { epochs: 1 } : { initialEpoch: e, epochs: e + 1 });
        const dir = await cut(data, stopAt, async (t, stop) => {
          for (let e = 0; e < 4 && t.step < stopAt; e++) await t.fit(data, { ...epochOptions(e), batchSize: 8, callbacks: [stop] });
        });
        const warnings: string[] = [];
        const resumed = await Trainer.resume(dir, options({ info: () => undefined, warn: (m) => void warnings.push(m) }));
        const trained: number[] = [];
        for (let e = resumed.position.epoch; e < 4; e++) trained.push(...(await resumed.fit(data, { ...epochOptions(e), batchSize: 8 })).epoch);
        expect(trained).to.deep.equal([1, 2, 3].filter((e) => e >= Math.floor(stopAt / 4)));
        expect(resumed.step).to.equal(16);
        expect(weights(resumed)).to.deep.equal(await straight(data));
        expect(warnings).to.deep.equal([]);
        resumed.dispose();
        data.dispose();
      });
    }

    it('a new schedule on resumed weights, fit({ initialEpoch: 0, epochs: 3 }) with the checkpoint past epoch 3, trains it as Keras does (not the cut fit)', async () => {
      const data = blobs(32);
      const dir = await cut(data, 99, async (t) => void (await t.fit(data, { epochs: 4, batchSize: 8 })));
      const warnings: string[] = [];
      const resumed = await Trainer.resume(dir, options({ info: () => undefined, warn: (m) => void warnings.push(m) }));
      expect((await resumed.fit(data, { initialEpoch: 0, epochs: 3, batchSize: 8 })).epoch).to.deep.equal([0, 1, 2]);
      expect(warnings).to.deep.equal([]);
      resumed.dispose();
      data.dispose();
    });

    it('the ambiguous case, fit({ epochs: k }) resumed at the end of epoch k - 1 (also the finished fit run again), trains nothing and says how to go on', async () => {
      const data = blobs(32);
      const dir = await cut(data, 4, async (t, stop) => void (await t.fit(data, { epochs: 1, batchSize: 8, callbacks: [stop] })));
      const warnings: string[] = [];
      const resumed = await Trainer.resume(dir, options({ info: () => undefined, warn: (m) => void warnings.push(m) }));
      expect((await resumed.fit(data, { epochs: 1, batchSize: 8 })).epoch).to.deep.equal([]);
      expect(warnings.join('\n')).to.match(/reached epoch 1, the final epoch this fit asks for .*nothing to train\. For more epochs pass initialEpoch: 1/);
      expect((await resumed.fit(data, { epochs: 2, initialEpoch: 1, batchSize: 8 })).epoch).to.deep.equal([1]);
      resumed.dispose();
      data.dispose();
    });

    it('a fit with initialEpoch: 0 run again continues from the checkpoint (it trained the first epochs again on trained weights), with a warning', async () => {
      const data = blobs(32);
      const dir = await cut(data, 6, async (t, stop) => void (await t.fit(data, { epochs: 4, initialEpoch: 0, batchSize: 8, callbacks: [stop] })));
      const warnings: string[] = [];
      const resumed = await Trainer.resume(dir, options({ info: () => undefined, warn: (m) => void warnings.push(m) }));
      const h = await resumed.fit(data, { epochs: 4, initialEpoch: 0, batchSize: 8 });
      expect(h.epoch).to.deep.equal([1, 2, 3]);
      expect(resumed.step).to.equal(16);
      expect(weights(resumed)).to.deep.equal(await straight(data));
      expect(warnings.join('\n')).to.match(/initialEpoch 0 is behind the resumed checkpoint \(epoch 1, batch 2\), so this fit continues from the checkpoint/);
      resumed.dispose();
      data.dispose();
    });

  });

  it('a failing save leaves the previous checkpoint intact and loadable', async () => {
    const { dir, trainer } = await savedRun();
    const before = fs.readFileSync(path.join(dir, 'step-2', 'tensors.bin'));
    (trainer.plugins[0] as ReturnType<typeof counter>).saveState = () => {
      throw new Error('disk full');
    };
    await errorOf(trainer.save(dir));
    expect(fs.readFileSync(path.join(dir, 'LATEST'), 'utf8').trim()).to.equal('step-2');
    expect(fs.readFileSync(path.join(dir, 'step-2', 'tensors.bin'))).to.deep.equal(before);
    expect(fs.readdirSync(dir).filter((n) => n.startsWith('.tmp'))).to.deep.equal([]);
    const r = await Trainer.resume(dir, options());
    expect(r.step).to.equal(2);
    r.dispose();
  });

  it('saving a black-box optimizer leaks no tensor (getWeights hands out a fresh iter scalar)', async () => {
    const dir = tmp();
    const data = blobs(16);
    const trainer = new Trainer(options({ optimizer: tf.train.adam(0.01) }));
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    await trainer.save(dir);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) await trainer.save(dir);
    expect(tf.memory().numTensors - before).to.equal(0);
    trainer.dispose();
    data.dispose();
  });

  it('keeps the newest two checkpoints and LATEST points at the newest', async () => {
    const { dir, trainer } = await savedRun();
    const data = blobs(16);
    for (let i = 0; i < 3; i++) {
      await trainer.fit(data, { epochs: 1, batchSize: 8 });
      await trainer.save(dir);
    }
    expect(fs.readdirSync(dir).sort(), 'and the live trainer holds the folder').to.deep.equal([WRITER_LOCK, 'LATEST', 'step-6', 'step-8']);
    expect(fs.readFileSync(path.join(dir, 'LATEST'), 'utf8').trim()).to.equal('step-8');
    data.dispose();
  });

  it("prunes by when checkpoints were written: a new run in a folder holding an older run's higher-numbered ones keeps its own newest two", async () => {
    const dir = tmp();
    const files = { 'manifest.json': JSON.stringify({ format: 'tapfit-checkpoint' }) }; // pruning removes only what it recognises as checkpoints
    for (const step of [700, 800]) await writeCheckpointDir(dir, step, files);
    const past = new Date(Date.now() - 3600_000);
    for (const name of ['step-700', 'step-800']) fs.utimesSync(path.join(dir, name), past, past);
    for (const step of [10, 20, 30]) await writeCheckpointDir(dir, step, files);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['LATEST', 'step-20', 'step-30']);
    expect(fs.readFileSync(path.join(dir, 'LATEST'), 'utf8').trim()).to.equal('step-30');
  });

  it('a missing or truncated checkpoint is a clear error and changes nothing', async () => {
    expect((await errorOf(Trainer.resume(tmp(), options()))).message).to.match(/no complete checkpoint there/);
    const { dir } = await savedRun();
    const bin = path.join(dir, 'step-2', 'tensors.bin');
    fs.writeFileSync(bin, fs.readFileSync(bin).subarray(0, 100));
    const err = await errorOf(Trainer.resume(dir, options()));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(/truncated or corrupt/);
    fs.writeFileSync(path.join(dir, 'step-2', 'manifest.json'), '{"format":');
    expect((await errorOf(Trainer.resume(dir, options()))).message).to.match(/not valid JSON/);
  });

  it('refuses a checkpoint from an incompatible core version', async () => {
    const { dir } = await savedRun();
    const file = path.join(dir, 'step-2', 'manifest.json');
    const m = JSON.parse(fs.readFileSync(file, 'utf8'));
    fs.writeFileSync(file, JSON.stringify({ ...m, coreVersion: '7.0.0' }));
    expect((await errorOf(Trainer.resume(dir, options()))).message).to.match(/written by @tapfit\/core 7\.0\.0 cannot be resumed/);
  });

  it('names a plugin the checkpoint needs but the trainer lacks', async () => {
    const { dir } = await savedRun();
    const err = await errorOf(Trainer.resume(dir, options({ plugins: [] })));
    expect(err.message).to.match(/needs plugin 'counter'.*Add 'counter' to the plugins/);
  });

  it('a different architecture or optimizer is refused before anything is loaded', async () => {
    const { dir } = await savedRun();
    const other = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 5 }), tf.layers.dense({ units: 3 })] });
    expect((await errorOf(Trainer.resume(dir, options({ model: other })))).message).to.match(/saved with shape \[4,8\] but this model's .* is \[4,5\]/);
    expect((await errorOf(Trainer.resume(dir, options({ optimizer: adamw({ lr: 0.1 }) })))).message).to.match(/update chain was \[momentum, lr\] when saved/);
    const leakBefore = tf.memory().numTensors;
    await errorOf(Trainer.resume(dir, options({ optimizer: adamw({ lr: 0.1 }) })).catch((e) => Promise.reject(e)));
    // the failed resume's trainer kept its freshly built model and state only
    expect(tf.memory().numTensors - leakBefore).to.be.lessThan(20);
  });

  // A plugin like LoRA or OnlineNorm adds or swaps model variables: with it added or removed, the plugin is what differs, not the architecture the user wrote.
  const withExtraLayer = () =>
    tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 8, name: 'hidden' }), tf.layers.dense({ units: 8, name: 'extra' }), tf.layers.dense({ units: 3, name: 'out' })] });

  it('a plugin that saved state, missing at resume, is named even when the model variables differ too', async () => {
    const { dir } = await savedRun();
    const err = await errorOf(Trainer.resume(dir, options({ model: withExtraLayer(), plugins: [] })));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(/needs plugin 'counter'.*Add 'counter' to the plugins/);
  });

  it('a plugin registered now but not when saved is named when the model variables differ', async () => {
    const dir = tmp();
    const data = blobs(16);
    const plain = new Trainer(options({ plugins: [] }));
    await plain.fit(data, { epochs: 1, batchSize: 8 });
    await plain.save(dir);
    plain.dispose();
    data.dispose();
    const err = await errorOf(Trainer.resume(dir, options({ model: withExtraLayer() })));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(/holds 4 model variables but this model has 6; plugin 'counter' is registered now but was not when saved, and plugins may add or swap model variables\. Resume with the plugins the run was saved with \(none\)/);
  });
});
