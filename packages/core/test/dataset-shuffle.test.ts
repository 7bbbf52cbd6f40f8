import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as core from '../src';
import { datasetData, installMemoryGuard, Stage, TapfitError, Trainer, type Batch } from '../src';
import { testTrainerOptions } from '../src/testing';
import { tinyMlp, tinyTrainer, tmpDir, useBackend } from './fixtures';

// datasetData's default shuffle (fit's shuffle: true) over streams that fail, stop early or hold large elements.
describe('datasetData shuffle: failures, early stops and the buffer', () => {
  useBackend('cpu');

  const features = (i: number) => [Math.sin(i), Math.cos(i), (i % 3) - 1, 0.5];
  /** Tensor elements made as they are read, as a file reader makes them; `failAt` throws like a bad record. */
  const stream = (n: number, failAt = -1) =>
    tf.data.generator(function* () {
      for (let i = 0; i < n; i++) {
        if (i === failAt) throw new Error(`bad record at line ${i}`);
        yield { xs: tf.tensor1d(features(i)), ys: tf.scalar(i % 3, 'int32') };
      }
    });

  /** Unhandled rejections while `run` goes on and a little after (Node ends the process on one by default). */
  async function unhandledDuring(run: () => Promise<void>): Promise<unknown[]> {
    const seen: unknown[] = [];
    const listener = (reason: unknown) => seen.push(reason);
    process.on('unhandledRejection', listener);
    try {
      await run();
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.off('unhandledRejection', listener);
    }
    return seen;
  }

  // tf.data's shuffle read the element that failed ahead, unawaited: an unhandled rejection (the process ended) when the failing read
  // came after the buffer's first fill, and the buffer's elements leaked.
  it('a dataset that fails mid-epoch rejects fit (no unhandled rejection), and nothing is left allocated', async () => {
    const t = tinyTrainer();
    await t.setup();
    const before = tf.memory().numTensors;
    let err: Error | undefined;
    const unhandled = await unhandledDuring(async () => {
      err = await t.fit(datasetData(stream(3000, 1500)), { epochs: 1, batchSize: 10 }).then(
        () => expect.fail('fit resolved'),
        (e: Error) => e,
      );
    });
    expect(unhandled.map(String)).to.deep.equal([]);
    expect(err?.message).to.match(/bad record at line 1500/);
    expect(tf.memory().numTensors).to.equal(before);
    // The trainer goes on (the failed epoch's position is kept: train the next one).
    const stepsBefore = t.step;
    await t.fit(datasetData(stream(300)), { epochs: 2, initialEpoch: 1, batchSize: 10 });
    expect(t.step - stepsBefore).to.equal(30);
    expect(tf.memory().numTensors).to.equal(before);
    t.dispose();
  });

  it('a fit stopped early or failing frees what the shuffle buffer holds', async () => {
    const t = tinyTrainer();
    await t.setup();
    const before = tf.memory().numTensors;
    let seen = 0;
    await t.fit(datasetData(stream(300)), { epochs: 1, batchSize: 10, callbacks: { onBatchEnd: () => void (++seen === 3 && t.stop()) } });
    expect(t.step).to.equal(3);
    expect(tf.memory().numTensors, 'after a stop').to.equal(before);

    const failing = tinyTrainer({
      plugins: [{ name: 'boom', core: '*', apply: ({ hooks }) => hooks.batchEnd.tap({ stage: Stage.LAST }, (i) => { if (i.batch === 2) throw new Error('boom'); }) }],
    });
    await failing.setup();
    const beforeFailing = tf.memory().numTensors;
    const err = await failing.fit(datasetData(stream(300)), { epochs: 1, batchSize: 10 }).then(
      () => expect.fail('fit resolved'),
      (e: TapfitError) => e,
    );
    expect(err.code).to.equal('TAPFIT_E_PLUGIN_FAILED');
    expect(tf.memory().numTensors, 'after a failed fit').to.equal(beforeFailing);
    t.dispose();
    failing.dispose();
  });

  it("the trainer hands a failure to the source through the iterator's throw(); the helper that does it is not public API", () => {
    expect(core).to.not.have.property('failSource');
  });

  it('an epoch continued after a stop, or resumed from a checkpoint, trains the batches the whole epoch would have: the same weights', async () => {
    const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
    const [wholeModel, cutModel, resumedModel] = [tinyMlp(), tinyMlp(), tinyMlp()];
    const whole = tinyTrainer({ model: wholeModel });
    await whole.fit(datasetData(stream(120)), { epochs: 1, batchSize: 8 });
    const cut = tinyTrainer({ model: cutModel });
    await cut.fit(datasetData(stream(120)), { epochs: 1, batchSize: 8, callbacks: { onBatchEnd: (b: number) => void (b === 4 && cut.stop()) } });
    expect(cut.step).to.equal(5);
    const dir = tmpDir();
    await cut.save(dir);
    await cut.fit(datasetData(stream(120)), { epochs: 1, batchSize: 8 }); // continues the stopped epoch
    expect(cut.step).to.equal(whole.step);
    expect(weights(cutModel)).to.deep.equal(weights(wholeModel));
    const resumed = await Trainer.resume(dir, testTrainerOptions({ model: resumedModel }));
    await resumed.fit(datasetData(stream(120)), { epochs: 1, batchSize: 8 }); // the first fit after resume finishes epoch 0
    expect(resumed.step).to.equal(whole.step);
    expect(weights(resumedModel)).to.deep.equal(weights(wholeModel));
    fs.rmSync(dir, { recursive: true });
    for (const t of [whole, cut, resumed]) t.dispose();
    for (const m of [wholeModel, cutModel, resumedModel]) m.dispose();
  });

  it('the default buffer holds at most 64 MiB of large elements (1024 of them would be 256 MiB); shuffleBuffer sets the count', async () => {
    const width = 65536; // 256 KiB per element
    const big = (n: number) => tf.data.generator(function* () {
      for (let i = 0; i < n; i++) yield { xs: tf.fill([width], i / n), ys: tf.scalar(i % 2, 'int32') };
    });
    const live = async (source: ReturnType<typeof datasetData>) => {
      const before = tf.memory().numBytes;
      const it = source.batches({ batchSize: 4, shuffle: true, seed: 1, epoch: 0 }) as AsyncIterator<Batch>;
      const r = await it.next();
      tf.dispose([r.value.x, r.value.y]);
      const held = tf.memory().numBytes - before; // the buffer's elements
      await it.return!(undefined);
      expect(tf.memory().numBytes).to.equal(before);
      return held;
    };
    expect(await live(datasetData(big(400)))).to.be.at.most(64 * 2 ** 20);
    expect(await live(datasetData(big(400), { shuffleBuffer: 300 }))).to.be.at.least(296 * width * 4);
  });

  it('a refused allocation while the buffer fills names shuffleBuffer, and the buffer is freed', async () => {
    const t = tinyTrainer();
    await t.setup();
    const before = tf.memory().numTensors;
    const guard = installMemoryGuard(2 ** 20, 'cpu'); // counts what is allocated from here on: room for ~250 elements of 4 KiB
    try {
      const elements = tf.data.generator(function* () {
        for (let i = 0; i < 2000; i++) yield { xs: tf.fill([1020], i), ys: tf.scalar(i % 3, 'int32') };
      });
      const err = await t.fit(datasetData(elements, { shuffleBuffer: 2000 }), { epochs: 1, batchSize: 8 }).then(
        () => expect.fail('fit resolved'),
        (e: TapfitError) => e,
      );
      expect(err.code, String(err)).to.equal('TAPFIT_E_MEMORY');
      expect(err.message).to.match(/datasetData's shuffle buffer held \d+ elements then, about .*: pass datasetData\(ds, \{ shuffleBuffer \}\) a smaller count, or fit with shuffle: false/);
      expect(tf.memory().numTensors).to.equal(before);
    } finally {
      guard.remove();
      t.dispose();
    }
  });

  it('shuffleBuffer must be a whole number of elements', () => {
    for (const bad of [0, -1, 2.5, NaN]) {
      expect(() => datasetData(stream(4), { shuffleBuffer: bad })).to.throw(TapfitError, /shuffleBuffer must be a whole number of elements, at least 1/);
    }
  });
});
