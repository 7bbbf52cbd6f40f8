import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { SilentLogger } from '@tapfit/core';
import { readConfig, runConfig, type RunOptions } from '../src';
import { recordingLogger, rejectionOf, tinyConfig, tmpDir, writeJson, writeModule } from './helpers';

// 300 digits in batches of 20: 15 steps per epoch, 45 in 3 epochs; a checkpoint every 4 steps.
const crashAt = 23; // mid-epoch 2; the newest checkpoint then is step 20 (epoch 2, batch 5)

function run(dir: string, options: RunOptions = {}) {
  const file = writeJson(tinyConfig({ checkpoint: { dir: 'ckpt', every: 4 }, log: { progress: false, metrics: 'metrics.jsonl' } }), dir);
  return runConfig(readConfig(file), { configDir: dir, configFile: file, logger: new SilentLogger(), quiet: true, ...options });
}
const latest = (dir: string) => path.join(dir, 'ckpt', fs.readFileSync(path.join(dir, 'ckpt', 'LATEST'), 'utf8').trim());
/** Where the newest checkpoint stands (variable names differ: tfjs numbers repeated layer names per process). */
const manifestOf = (dir: string) => {
  const { step, skipped, position, seed, plugins } = JSON.parse(fs.readFileSync(path.join(latest(dir), 'manifest.json'), 'utf8'));
  return { step, skipped, position, seed, plugins } as { step: number; position: unknown };
};
const metricsOf = (dir: string) =>
  fs
    .readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, number>);

describe('tapfit train: checkpoints and --resume', () => {
  it('a run that crashed after 23 steps, resumed, ends exactly like a straight run (weights, optimizer state, metrics)', async () => {
    const straight = tmpDir();
    const straightResult = await run(straight);

    const broken = tmpDir();
    const crash = writeModule(broken, 'crash.js', `exports.tapfitPlugin = () => ({ name: 'crash', core: '^0.1.0', apply({ hooks, trainer }) {
      hooks.batchEnd.tap('crash', () => { if (trainer.step === ${crashAt}) throw new Error('simulated crash'); });
    } });\n`);
    const before = tf.memory().numTensors;
    expect((await rejectionOf(run(broken, { localPlugins: [crash] }))).message).to.match(/simulated crash/);
    expect(tf.memory().numTensors, 'tensors leaked by the crashed run').to.equal(before);
    expect(manifestOf(broken).step).to.equal(20);
    expect(metricsOf(broken).map((l) => l.epoch)).to.deep.equal([1]);

    const log = recordingLogger();
    const resumed = await run(broken, { resume: true, logger: log });
    expect(log.infos).to.include("resumed from '" + path.join(broken, 'ckpt') + "' at epoch 2, batch 5 (step 20)");
    expect(tf.memory().numTensors).to.equal(before);

    // The final checkpoints are identical: model weights and optimizer state bit for bit.
    expect(manifestOf(broken)).to.deep.equal(manifestOf(straight));
    expect(manifestOf(straight).step).to.equal(45);
    expect(fs.readFileSync(path.join(latest(broken), 'tensors.bin')).equals(fs.readFileSync(path.join(latest(straight), 'tensors.bin')))).to.equal(true);
    expect(resumed.test).to.deep.equal(straightResult.test);
    expect(resumed.history.epoch).to.deep.equal([1, 2]); // epochs 2 and 3

    // The metrics log reads as one run, the interrupted epoch 2 included: the checkpoint saved
    // inside it holds its loss and metric sums so far.
    const [a, b] = [metricsOf(straight), metricsOf(broken)];
    expect(b.map((l) => l.epoch)).to.deep.equal([1, 2, 3]);
    for (let i = 0; i < 3; i++) {
      for (const key of ['epoch', 'step', 'loss', 'val_loss', 'val_acc']) expect(b[i][key], `epoch ${i + 1} ${key}`).to.equal(a[i][key]);
    }

    // Resuming the finished run trains nothing, says so and evaluates the same weights.
    const log2 = recordingLogger();
    const again = await run(broken, { resume: true, logger: log2 });
    expect(log2.infos.join('\n')).to.match(/it finished all 3 epochs \(step 45\), nothing left to train; evaluating/);
    expect(again.history.epoch).to.deep.equal([]);
    expect(again.test).to.deep.equal(straightResult.test);
    expect(manifestOf(broken).step).to.equal(45);
    expect(metricsOf(broken).map((l) => l.epoch)).to.deep.equal([1, 2, 3]);
  });

  it('saves every N steps and at each epoch end (not twice at an epoch\'s last step), keeping the newest two', async () => {
    const dir = tmpDir();
    const file = writeJson(tinyConfig({ training: { epochs: 1, batchSize: 20 }, checkpoint: { dir: 'ckpt', every: 6 } }), dir);
    // Runs after the checkpoint taps (stage 4000 > Stage.LAST) and notes what LATEST names then.
    const watcher = writeModule(dir, 'watch.js', `const fs = require('fs');
      const latest = () => { try { return fs.readFileSync(${JSON.stringify(path.join(dir, 'ckpt', 'LATEST'))}, 'utf8').trim(); } catch { return '-'; } };
      exports.tapfitPlugin = () => ({ name: 'watch', core: '^0.1.0', apply({ hooks, trainer }) {
        hooks.batchEnd.tap({ stage: 4000 }, () => void globalThis.__tapfitSeen.push(trainer.step + ':' + latest()));
        hooks.epochEnd.tap({ stage: 4000 }, () => void globalThis.__tapfitSeen.push('end:' + latest()));
      } });\n`);
    const seen: string[] = ((globalThis as { __tapfitSeen?: string[] }).__tapfitSeen = []);
    await runConfig(readConfig(file), { configDir: dir, configFile: file, logger: new SilentLogger(), quiet: true, localPlugins: [watcher] });
    expect(seen.filter((s, i) => i === 0 || s.split(':')[1] !== seen[i - 1].split(':')[1])).to.deep.equal(['1:-', '6:step-6', '12:step-12', 'end:step-15']);
    expect(fs.readdirSync(path.join(dir, 'ckpt')).filter((n) => n.startsWith('step-')).sort()).to.deep.equal(['step-12', 'step-15']);
  });

  it('--resume without a checkpoint folder in the config says what to add', async () => {
    const dir = tmpDir();
    const file = writeJson(tinyConfig(), dir);
    const err = await rejectionOf(runConfig(readConfig(file), { configDir: dir, resume: true, logger: new SilentLogger() }));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(/--resume needs a checkpoint folder: add "checkpoint": \{ "dir": "\.\.\." \} to the config/);
  });

  it('--resume with a missing or empty checkpoint folder says to run without --resume, before anything loads', async () => {
    for (const [prepare, why] of [
      [() => {}, 'the folder does not exist'],
      [(ckpt: string) => fs.mkdirSync(ckpt), 'it holds no checkpoint'],
    ] as const) {
      const dir = tmpDir();
      prepare(path.join(dir, 'ckpt'));
      const log = recordingLogger();
      const err = await rejectionOf(run(dir, { resume: true, logger: log }));
      expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
      expect(err.message).to.equal(`--resume: no checkpoint to continue from in 'checkpoint.dir' ('${path.join(dir, 'ckpt')}'): ${why}. Run without --resume to start a fresh run.`);
      expect(log.infos, 'nothing ran: no backend picked').to.deep.equal([]);
    }
  });

  it('--resume with a metrics log holding a line that is not a metrics line (null, a number) is refused naming the file and line, before anything loads', async () => {
    for (const bad of ['null', '42', '{"loss": 1}']) {
      const dir = tmpDir();
      fs.mkdirSync(path.join(dir, 'ckpt'));
      fs.writeFileSync(path.join(dir, 'ckpt', 'LATEST'), 'step-4\n');
      fs.writeFileSync(path.join(dir, 'metrics.jsonl'), JSON.stringify({ epoch: 1, step: 15, loss: 1 }) + '\n' + bad + '\n');
      const log = recordingLogger();
      const err = await rejectionOf(run(dir, { resume: true, logger: log }));
      expect(err.code, bad).to.equal('TAPFIT_E_CONFIG');
      expect(err.message, bad).to.contain(`cannot continue the metrics log '${path.join(dir, 'metrics.jsonl')}': line 2 is not a metrics line`);
      expect(log.infos, 'nothing ran: no backend picked').to.deep.equal([]);
    }
  });

  it('--resume with step folders but no LATEST names the file to write, or a fresh run', async () => {
    const dir = tmpDir();
    fs.mkdirSync(path.join(dir, 'ckpt', 'step-4'), { recursive: true });
    const err = await rejectionOf(run(dir, { resume: true }));
    expect(err.message).to.contain("it holds step-4 but no LATEST file naming the newest. Write the name of the step-* folder to continue from into '" + path.join(dir, 'ckpt', 'LATEST') + "', or run without --resume");
  });
});
