// The core calls a plugin's apply() and dispose() synchronously. An async one (JavaScript,
// or TypeScript that casts past the `void | undefined` return type) returned a promise
// nobody awaited: its taps landed after setup or never, and its rejection crashed the
// process. The trainer now refuses the promise at once, naming the plugin and the fix.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, SilentLogger, Trainer, type PluginApi, type TapfitPlugin, type TapfitError } from '../src';
import { blobs, thrown, tinyMlp, useBackend } from './fixtures';

/** Counts unhandled rejections while `f` runs and a little after (the plugins' promises settle late). */
async function unhandledDuring(f: () => Promise<void>): Promise<number> {
  let count = 0;
  const on = () => void count++;
  process.on('unhandledRejection', on);
  try {
    await f();
    await new Promise((r) => setTimeout(r, 30));
  } finally {
    process.off('unhandledRejection', on);
  }
  return count;
}

const later = () => new Promise((r) => setTimeout(r, 5));

describe('plugin methods the core calls synchronously refuse a returned promise', () => {
  useBackend('cpu');

  it('an async apply (I/O before tapping): the trainer is refused, naming the plugin and the setup tap to use', async () => {
    let taps = 0;
    const vocab = {
      name: 'vocab',
      core: '*',
      async apply(api: PluginApi) {
        await later(); // e.g. reading a vocabulary file
        api.hooks.batchEnd.tap('vocab', () => void taps++);
      },
    } as unknown as TapfitPlugin;
    let err: TapfitError | undefined;
    const unhandled = await unhandledDuring(async () => {
      err = thrown(() => new Trainer({ model: tinyMlp(1), loss: 'softmaxCrossEntropy', optimizer: 'sgd', logger: new SilentLogger(), plugins: [vocab] }));
    });
    expect(err!.code).to.equal(ErrorCodes.PLUGIN_INVALID);
    expect(err!.message).to.contain("plugin 'vocab': apply() returned a promise");
    expect(err!.message).to.contain("do async work (reading files, fetching) in a 'setup' tap");
    // Its late tap hit the hooks of a trainer that was never returned (a setup tap is the way), and nothing crashed.
    expect(unhandled, 'unhandled rejections').to.equal(0);
    expect(taps).to.equal(0);
    // The refused trainer released the plugin: a synchronous version of it trains.
    const sync: TapfitPlugin = { name: 'vocab', core: '*', apply: (api) => api.hooks.batchEnd.tap('vocab', () => void taps++) };
    const data = blobs(16);
    const t = new Trainer({ model: tinyMlp(1), loss: 'softmaxCrossEntropy', optimizer: 'sgd', logger: new SilentLogger(), plugins: [sync] });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    expect(taps).to.equal(2);
    t.dispose();
    data.dispose();
  });

  it('an async apply whose taps would land in time (no real I/O) is refused too: the result does not depend on timing', () => {
    const quick = { name: 'quick', core: '*', apply: async () => undefined } as unknown as TapfitPlugin;
    const err = thrown(() => new Trainer({ model: tinyMlp(1), loss: 'softmaxCrossEntropy', optimizer: 'sgd', logger: new SilentLogger(), plugins: [quick] }));
    expect(err.code).to.equal(ErrorCodes.PLUGIN_INVALID);
  });

  it("an async dispose: trainer.dispose() frees the trainer's own state, then throws naming the plugin", async () => {
    const closing = {
      name: 'closing',
      core: '*',
      apply: () => undefined,
      async dispose() {
        await later();
        throw new Error('socket already closed');
      },
    } as unknown as TapfitPlugin;
    const data = blobs(16);
    const model = tinyMlp(1);
    const before = tf.memory().numTensors;
    const t = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: 'adam', logger: new SilentLogger(), plugins: [closing] });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    let err: TapfitError | undefined;
    const unhandled = await unhandledDuring(async () => {
      err = thrown(() => t.dispose());
    });
    expect(err!.code).to.equal(ErrorCodes.PLUGIN_INVALID);
    expect(err!.message).to.contain("plugin 'closing': dispose() returned a promise");
    expect(unhandled, 'unhandled rejections').to.equal(0);
    expect(tf.memory().numTensors - before, "the trainer's adam state freed").to.equal(0);
    model.dispose();
    data.dispose();
  });
});
