import { expect } from 'chai';
import { execFile } from 'node:child_process';
import * as path from 'node:path';

const core = path.resolve(__dirname, '../../src');

/**
 * A script that trains two steps with dataParallel (3 replicas: 2 worker threads), then
 * disposes the trainer (or not) and returns. With dispose it prints the process's thread
 * counts (Linux: /proc/self/task) before setup, after it, and once dispose has ended the
 * workers (polled for up to 5 s).
 */
const script = (dispose: boolean) => `
const tf = require('@tensorflow/tfjs');
const fs = require('node:fs');
const core = require(${JSON.stringify(core)});
const threads = () => (fs.existsSync('/proc/self/task') ? fs.readdirSync('/proc/self/task').length : -1);
(async () => {
  await core.selectBackend('wasm', { threads: 1, log: false });
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3 })] });
  const before = threads();
  const trainer = new core.Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: core.sgd({ lr: 0.1 }), logger: new core.SilentLogger(), plugins: [core.dataParallel({ replicas: 3 })] });
  await trainer.setup();
  const running = threads();
  for (let step = 0; step < 2; step++) {
    trainer.trainStep({ x: tf.randomNormal([8, 4]), y: tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32') }, { epoch: 0, batch: step, step }).loss.dispose();
  }
  if (${dispose}) {
    trainer.dispose();
    for (let i = 0; i < 100 && threads() > before; i++) await new Promise((r) => setTimeout(r, 50));
    console.log(JSON.stringify({ before, running, after: threads() }));
  }
  console.log('trained');
})().catch((err) => { console.error(err); process.exitCode = 1; });
`;

/** Runs `source` in a fresh node; resolves with its exit code, output and how long it ran (killed after `timeoutMs`). */
function runNode(source: string, timeoutMs: number): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, ['-e', source], { cwd: path.resolve(__dirname, '../..'), timeout: timeoutMs }, (err, stdout, stderr) => {
      const e = err as (Error & { code?: number; signal?: string }) | null;
      resolve({ code: e ? (e.code ?? null) : 0, signal: e?.signal ?? null, stdout, stderr, ms: Date.now() - started });
    });
  });
}

describe('dataParallel: the workers end with the trainer', () => {
  for (const dispose of [true, false]) {
    it(dispose ? 'trainer.dispose() ends the workers: the process exits by itself' : 'a script that forgets dispose() still exits (idle workers hold no reference)', async () => {
      const r = await runNode(script(dispose), 60_000);
      expect(r.stderr).to.equal('');
      expect(r.signal, 'killed: the process did not exit').to.equal(null);
      expect(r.code).to.equal(0);
      const lines = r.stdout.trim().split('\n');
      expect(lines.at(-1)).to.equal('trained');
      if (!dispose) return;
      const { before, running, after } = JSON.parse(lines[0]!) as { before: number; running: number; after: number };
      if (before < 0) return; // no /proc: the exit alone shows it
      expect(running, 'the two workers run after setup').to.be.at.least(before + 2);
      expect(after, 'dispose ended them').to.equal(before);
    });
  }
});
