import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { sgd, SilentLogger, Trainer, type NamedTensors } from '@tapfit/core';
import { delayedGradients, GradientDelay, tapfitPlugin } from '../src';
import { errorOf, quadraticSetup, recorder, useBackend } from './helpers';
import { refDelayedQuadratic } from './reference';

const marked = (i: number): NamedTensors => ({ a: tf.scalar(i), b: tf.tensor1d([i, -i]) });

describe('gradient delay', () => {
  useBackend('cpu');

  describe('GradientDelay queue', () => {
    it('returns null for the first D pushes, then the gradient pushed D calls earlier (FIFO)', () => {
      const q = new GradientDelay(3);
      const out: Array<number | null> = [];
      for (let i = 0; i < 8; i++) {
        const g = q.push(marked(i));
        out.push(g === null ? null : g.a.dataSync()[0]);
        expect(q.pending.length).to.equal(Math.min(i + 1, 3));
        if (g) tf.dispose(Object.values(g));
      }
      expect(out).to.deep.equal([null, null, null, 0, 1, 2, 3, 4]);
      q.dispose();
    });

    it('delay 0 passes the same tensors straight through', () => {
      const q = new GradientDelay(0);
      const g = marked(5);
      expect(q.push(g)).to.equal(g);
      expect(q.pending).to.have.length(0);
      tf.dispose(Object.values(g));
    });

    it('keeps what it holds across tf.tidy and frees it on dispose (no leaks)', () => {
      const before = tf.memory().numTensors;
      const q = new GradientDelay(2);
      for (let i = 0; i < 5; i++) {
        const out: NamedTensors = tf.tidy(() => q.push(marked(i)) ?? {});
        if (i >= 2) {
          expect(out.b.dataSync()[1]).to.equal(-(i - 2)); // survived the tidy it was pushed in
          tf.dispose(Object.values(out));
        }
      }
      expect(tf.memory().numTensors).to.equal(before + 2 * 2);
      q.dispose();
      expect(tf.memory().numTensors).to.equal(before);
    });

    for (const bad of [-1, 1.5, NaN, '3', undefined]) {
      it(`rejects delay ${typeof bad === 'string' ? `'${bad}'` : String(bad)} with the option named`, () => {
        const err = errorOf(() => new GradientDelay(bad as number));
        expect(err.code).to.equal('TAPFIT_E_CONFIG');
        expect(err.message).to.match(/option 'delay' must be an integer number of steps >= 0/);
        expect(errorOf(() => delayedGradients({ delay: bad as number })).message).to.match(/^delayed-gradients: option 'delay'/);
        if (bad !== undefined) expect(errorOf(() => tapfitPlugin({ delay: bad as number })).message).to.match(/option 'delay'/);
      });
    }
  });

  describe('delayedGradients plugin in the trainer', () => {
    const h = 1;
    const w0 = 1;

    for (const delay of [0, 1, 4]) {
      it(`D = ${delay}: applies at batch b the gradient of the weights at batch b - D (float64 reference)`, async () => {
        const q = quadraticSetup({ h, w0, batches: 30 });
        const rec = recorder(q.weight);
        const plugin = delayedGradients({ delay });
        const t = new Trainer({ model: q.model, loss: q.loss, optimizer: sgd({ lr: 0.1, momentum: 0.9 }), plugins: [plugin, rec], logger: new SilentLogger() });
        await t.fit(q.data, { epochs: 1, batchSize: 1 });
        const ref = refDelayedQuadratic({ h, w0, delay, batches: 30, lr: 0.1, momentum: 0.9, rho: 0 });
        rec.values.forEach((w, b) => expect(w, `batch ${b}`).to.be.closeTo(ref[b], 1e-5));
        // warm-up: D skipped updates, counted; the weights did not move before batch D
        expect(t.skipped).to.equal(delay);
        expect(t.step).to.equal(30 - delay);
        expect(rec.values.slice(0, delay).every((w) => w === w0)).to.equal(true);
        expect(rec.values[delay]).to.not.equal(w0);
        t.dispose();
        plugin.dispose();
        q.data.dispose();
      });
    }

    it('works with a black-box tf.train optimizer too (same trajectory as the chain)', async () => {
      const run = async (optimizer: tf.Optimizer | ReturnType<typeof sgd>) => {
        const q = quadraticSetup({ h, w0, batches: 20 });
        const rec = recorder(q.weight);
        const plugin = delayedGradients({ delay: 3 });
        const t = new Trainer({ model: q.model, loss: q.loss, optimizer, plugins: [plugin, rec], logger: new SilentLogger() });
        await t.fit(q.data, { epochs: 1, batchSize: 1 });
        t.dispose();
        plugin.dispose();
        q.data.dispose();
        return rec.values;
      };
      const chained = await run(sgd({ lr: 0.2 }));
      const blackBox = await run(tf.train.sgd(0.2));
      blackBox.forEach((w, b) => expect(w).to.be.closeTo(chained[b], 1e-6));
      expect(chained[19]).to.not.equal(w0);
    });

    it('holds D gradients between fits and frees them on dispose (no other tensors leak)', async () => {
      const q = quadraticSetup({ h, w0, batches: 16 });
      const plugin = delayedGradients({ delay: 5 });
      const t = new Trainer({ model: q.model, loss: q.loss, optimizer: sgd({ lr: 0.05, momentum: 0.9 }), plugins: [plugin], logger: new SilentLogger() });
      await t.setup();
      const before = tf.memory().numTensors;
      await t.fit(q.data, { epochs: 3, batchSize: 2 });
      expect(plugin.queue.pending).to.have.length(5);
      expect(tf.memory().numTensors).to.equal(before + 5); // one scalar gradient per queued step
      plugin.dispose();
      expect(tf.memory().numTensors).to.equal(before);
      t.dispose();
      q.data.dispose();
    });

    it('a backward tap after the delay (a mask, or one that skips the update) leaks nothing: the popped gradient is the step\'s to free', async () => {
      for (const later of [(g: NamedTensors) => Object.fromEntries(Object.entries(g).map(([k, t]) => [k, tf.mul(t, 0.5)])), () => null]) {
        const q = quadraticSetup({ h, w0, batches: 16 });
        const plugin = delayedGradients({ delay: 2 });
        const after = { name: 'after-delay', core: '^0.1.0', apply: ({ hooks }: { hooks: { backward: { tap: (o: object, f: (g: NamedTensors | null) => NamedTensors | null) => void } } }) => hooks.backward.tap({ name: 'after-delay', stage: 2000 }, (g) => (g === null ? null : later(g))) };
        const t = new Trainer({ model: q.model, loss: q.loss, optimizer: sgd({ lr: 0.05 }), plugins: [plugin, after as never], logger: new SilentLogger() });
        await t.setup();
        const before = tf.memory().numTensors;
        await t.fit(q.data, { epochs: 3, batchSize: 2 });
        expect(tf.memory().numTensors, `with a later tap returning ${later.length ? 'a masked gradient' : 'null'}`).to.equal(before + 2); // the two queued
        t.dispose();
        plugin.dispose();
        q.data.dispose();
      }
    });

    it("an instance serves one live trainer: a second is refused naming the plugin passed ('brakes' or 'delayed-gradients'); once the first is disposed it trains a new one exactly as a fresh instance", async () => {
      for (const make of [() => tapfitPlugin({ delay: 3, rho: 2 }), () => delayedGradients({ delay: 3 })]) {
        const run = async (plugin: ReturnType<typeof make>, q = quadraticSetup({ h, w0, batches: 10 })) => {
          const rec = recorder(q.weight);
          const t = new Trainer({ model: q.model, loss: q.loss, optimizer: sgd({ lr: 0.1, momentum: 0.9 }), plugins: [plugin, rec], logger: new SilentLogger() });
          await t.fit(q.data, { epochs: 1, batchSize: 1 });
          q.data.dispose();
          return { t, values: rec.values, skipped: t.skipped };
        };
        const fresh = make();
        const oracle = await run(fresh);
        oracle.t.dispose();

        const reused = make();
        const first = await run(reused);
        expect(reused.name).to.be.oneOf(['brakes', 'delayed-gradients']);
        const q = quadraticSetup({ h, w0, batches: 10 });
        const err = errorOf(() => new Trainer({ model: q.model, loss: q.loss, optimizer: sgd({ lr: 0.1 }), plugins: [reused], logger: new SilentLogger() }));
        expect(err.code).to.equal('TAPFIT_E_STATE');
        expect(err.message).to.contain(`plugin '${reused.name}' is applied to another trainer that has not been disposed`);
        q.data.dispose();
        first.t.dispose(); // frees the 3 gradients still queued
        const second = await run(reused);
        expect(second.values, `${reused.name} reused after dispose`).to.deep.equal(oracle.values);
        expect(second.skipped).to.equal(3);
        second.t.dispose();
      }
    });

    it('the queue is checkpointed: save, resume, continue == training straight through (bit for bit)', async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'brakes-ckpt-'));
      const options = (q: ReturnType<typeof quadraticSetup>, plugin: ReturnType<typeof tapfitPlugin>) => ({
        model: q.model,
        loss: q.loss,
        optimizer: sgd({ lr: 0.05, momentum: 0.9 }),
        plugins: [plugin],
        logger: new SilentLogger(),
      });
      try {
        const straight = quadraticSetup({ h, w0, batches: 12 });
        const p1 = tapfitPlugin({ delay: 3, rho: 2 });
        const t1 = new Trainer(options(straight, p1));
        await t1.fit(straight.data, { epochs: 2, batchSize: 1 });

        const first = quadraticSetup({ h, w0, batches: 12 });
        const p2 = tapfitPlugin({ delay: 3, rho: 2 });
        const t2 = new Trainer(options(first, p2));
        await t2.fit(first.data, { epochs: 1, batchSize: 1 });
        expect(p2.delayed!.queue.pending).to.have.length(3);
        await t2.save(dir);

        const second = quadraticSetup({ h, w0: 123, batches: 12 }); // weights come from the checkpoint
        const p3 = tapfitPlugin({ delay: 3, rho: 2 });
        const t3 = await Trainer.resume(dir, options(second, p3));
        expect(p3.delayed!.queue.pending).to.have.length(3);
        await t3.fit(second.data, { epochs: 2, batchSize: 1 });
        expect(second.weight()).to.equal(straight.weight());
        expect(t3.step).to.equal(t1.step);
        expect(t3.skipped).to.equal(3);

        // a resume with another delay is refused, naming the saved one, before the model is touched
        const p4 = tapfitPlugin({ delay: 2, rho: 2 });
        const other = quadraticSetup({ h, w0: 7, batches: 12 });
        let err: Error | undefined;
        await Trainer.resume(dir, options(other, p4)).catch((e) => (err = e));
        expect(err?.message).to.match(/saved with delay 3 but this plugin has delay 2; resume with delay 3/);
        expect(other.weight()).to.equal(7);
        expect(p4.delayed!.queue.pending).to.have.length(0);
        // The refused resume freed p4: it trains a new trainer as a fresh instance does.
        const trainDelay2 = async (plugin: ReturnType<typeof tapfitPlugin>) => {
          const q = quadraticSetup({ h, w0, batches: 6 });
          const t = new Trainer(options(q, plugin));
          await t.fit(q.data, { epochs: 1, batchSize: 1 });
          t.dispose();
          q.data.dispose();
          return q.weight();
        };
        expect(await trainDelay2(p4)).to.equal(await trainDelay2(tapfitPlugin({ delay: 2, rho: 2 })));

        for (const [t, p, q] of [[t1, p1, straight], [t2, p2, first], [t3, p3, second]] as const) {
          t.dispose();
          p.dispose();
          q.data.dispose();
        }
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
