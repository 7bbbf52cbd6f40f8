import { PassThrough } from 'node:stream';
import * as tf from '@tensorflow/tfjs';
import { SilentLogger, sgd, Stage, Trainer, type TapfitPlugin } from '@tapfit/core';
import { blobData, tinyModel } from '@tapfit/core/testing';
import { expect } from 'chai';
import { progressBar } from '../src/plugins/progress-bar';

/** A stream that keeps what is written; `isTTY` as given. */
function sink(isTTY: boolean): PassThrough & { text(): string; isTTY: boolean } {
  const s = new PassThrough() as PassThrough & { text(): string; isTTY: boolean };
  const chunks: string[] = [];
  s.on('data', (c: Buffer) => chunks.push(c.toString()));
  s.isTTY = isTTY;
  s.text = () => chunks.join('');
  return s;
}

/** Trains 2 epochs of 8 batches; a fake clock advances 1 s per batch. */
async function train(progress: (now: () => number) => TapfitPlugin): Promise<void> {
  let ms = 0;
  const clock: TapfitPlugin = { name: 'clock', core: '*', apply: ({ hooks }) => hooks.batchEnd.tap({ stage: Stage.FIRST }, () => void (ms += 1000)) };
  const data = blobData(64);
  const t = new Trainer({ model: tinyModel(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1 }), plugins: [clock, progress(() => ms)], logger: new SilentLogger() });
  await t.fit(data, { epochs: 2, batchSize: 8 });
  t.dispose();
  data.dispose();
}

describe('progress bar', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('not a terminal (CI logs, pipes): a plain line every few seconds, with the batch, the loss and the time', async () => {
    const out = sink(false);
    await train((now) => progressBar({ stream: out, everyMs: 3000, now }));
    const lines = out.text().split('\n').filter(Boolean);
    // 1 s per batch, a line each 3 s; the clock restarts with each epoch.
    expect(lines.map((l) => l.replace(/loss \d\.\d{4}/, 'loss L'))).to.deep.equal([
      'epoch 1/2: 3/8 batches, loss L, 3.0 s',
      'epoch 1/2: 6/8 batches, loss L, 6.0 s',
      'epoch 2/2: 3/8 batches, loss L, 3.0 s',
      'epoch 2/2: 6/8 batches, loss L, 6.0 s',
    ]);
    expect(out.text()).not.to.match(/\u001b\[/); // no terminal control codes in a log
  });

  it('on a terminal: the cli-progress bar', async () => {
    const out = sink(true);
    (out as unknown as { columns: number }).columns = 120;
    (out as unknown as { cursorTo: () => boolean; clearLine: () => boolean; moveCursor: () => boolean }).cursorTo = () => true;
    (out as unknown as { clearLine: () => boolean }).clearLine = () => true;
    (out as unknown as { moveCursor: () => boolean }).moveCursor = () => true;
    await train((now) => progressBar({ stream: out, now }));
    expect(out.text()).to.match(/epoch 1 \[.*\] \d\/8 batches \| loss/);
  });
});
