import { expect } from 'chai';
import { execFile } from 'node:child_process';
import * as path from 'node:path';

const core = path.resolve(__dirname, '../../src');

/**
 * In a fresh process (its thread count is its own; Linux: /proc/self/task): a checkpoint of
 * a 4 -> 8 -> 3 model, then two resumes refused (a model of other layer sizes) with one
 * dataParallel instance (3 replicas: 2 worker threads each time its setup runs), the thread
 * count after each (polled up to 5 s for workers to exit), then a resume with the right model
 * and the same instance: its threads, one step's loss, and the loss of the same step resumed
 * without dataParallel (the oracle: the same math up to float rounding).
 */
const script = `
const tf = require('@tensorflow/tfjs');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const core = require(${JSON.stringify(core)});
const threads = () => (fs.existsSync('/proc/self/task') ? fs.readdirSync('/proc/self/task').length : -1);
const settle = async (target) => { for (let i = 0; i < 100 && threads() > target; i++) await new Promise((r) => setTimeout(r, 50)); return threads(); };
const mlp = (hidden) => tf.sequential({ layers: [
  tf.layers.dense({ name: 'fc1', inputShape: [4], units: hidden, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
  tf.layers.dense({ name: 'fc2', units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) })] });
const options = (model, plugins) => ({ model, loss: 'softmaxCrossEntropy', optimizer: core.sgd({ lr: 0.1, momentum: 0.9 }), logger: new core.SilentLogger(), plugins });
const x = tf.randomNormal([12, 4], 0, 1, 'float32', 5);
const y = tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2], 'int32');
const stepLoss = (t) => { const r = t.trainStep({ x, y }, { epoch: 0, batch: t.step, step: t.step }); const v = r.loss.dataSync()[0]; r.loss.dispose(); return v; };
(async () => {
  await core.selectBackend('cpu');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-dp-resume-'));
  const saver = new core.Trainer(options(mlp(8), []));
  await saver.setup();
  stepLoss(saver);
  await saver.save(dir);
  saver.dispose();
  const before = threads();
  const dp = core.dataParallel({ replicas: 3, backend: 'cpu' });
  const refused = [];
  for (let i = 0; i < 2; i++) {
    try { (await core.Trainer.resume(dir, options(mlp(5), [dp]))).dispose(); refused.push('resumed'); } catch (e) { refused.push(e.code); }
    refused.push(await settle(before));
  }
  const retried = await core.Trainer.resume(dir, options(mlp(8), [dp]));
  const running = threads();
  const parallel = stepLoss(retried);
  retried.dispose();
  const after = await settle(before);
  const plain = await core.Trainer.resume(dir, options(mlp(8), []));
  const oracle = stepLoss(plain);
  plain.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ before, refused, running, parallel, oracle, after }));
})().catch((err) => { console.error(err); process.exitCode = 1; });
`;

describe('dataParallel: a refused Trainer.resume stops the workers its setup started', () => {
  it('refused resumes leave no worker threads, and the same instance then resumes and trains as one thread does', async () => {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(process.execPath, ['-e', script], { cwd: path.resolve(__dirname, '../..'), timeout: 90_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? 1 : 0, stdout, stderr });
      });
    });
    expect(r.stderr).to.equal('');
    expect(r.code).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { before: number; refused: (string | number)[]; running: number; parallel: number; oracle: number; after: number };
    expect(out.refused.filter((v) => typeof v === 'string')).to.deep.equal(['TAPFIT_E_CHECKPOINT', 'TAPFIT_E_CHECKPOINT']);
    expect(Math.abs(out.parallel - out.oracle), `loss ${out.parallel} with dataParallel, ${out.oracle} without`).to.be.below(1e-5 * Math.max(1, Math.abs(out.oracle)));
    if (out.before < 0) return; // no /proc: the retry training as one thread shows the instance reusable
    expect(out.refused.filter((v) => typeof v === 'number'), 'threads after each refused resume').to.deep.equal([out.before, out.before]);
    expect(out.running, 'the retry started its two workers').to.equal(out.before + 2);
    expect(out.after, 'dispose ended them').to.equal(out.before);
  });
});
