import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { activeWebgpuAdapter, formatAdapter } from '../../src/backend';
import { blobData, testTrainer } from '../../src/testing';
import { webgpuOrSkip } from './helpers';

describe('backend: a Trainer on webgpu', function () {
  before(async function () {
    await webgpuOrSkip(this, 'Trainer on webgpu');
  });
  after(() => tf.setBackend('cpu'));

  it('describe() names the adapter (vendor, architecture, software or hardware)', async () => {
    const lines: string[] = [];
    const trainer = testTrainer({ logger: { info: (l) => lines.push(l), warn: () => undefined } });
    await trainer.setup();
    const d = trainer.describe();
    const adapter = activeWebgpuAdapter()!;
    expect(d.adapter).to.deep.equal(adapter);
    expect(lines[0]).to.match(new RegExp(`^tapfit trainer on webgpu \\(adapter ${formatAdapter(adapter).replace(/[()+.]/g, '\\$&')}\\): \\d+ trainable parameters`));
    trainer.dispose();
  });

  it('fit and evaluate let the event loop turn after every batch (Dawn frees dropped GPU objects only then)', async () => {
    let turns = 0;
    let counting = true;
    const count = () => {
      turns++;
      if (counting) setImmediate(count);
    };
    const data = blobData(48);
    const trainer = testTrainer();
    await trainer.setup();
    setImmediate(count);
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    const afterFit = turns;
    await trainer.evaluate(data, { batchSize: 8 });
    counting = false;
    expect(afterFit).to.be.at.least(6);
    expect(turns - afterFit).to.be.at.least(6);
    trainer.dispose();
    data.dispose();
  });
});
