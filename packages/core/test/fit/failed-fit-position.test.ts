// A fit that fails leaves the position where a straight run needs it: a throw mid-epoch records
// the epoch so far as stop() does (so continuing it with other batching is refused, and its
// logged mean covers the whole epoch), and a fit refused before its first step leaves the
// position as the call found it. The oracle is the straight run: the same weights, bit for bit,
// and the same logged losses.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { datasetData, sgd, SilentLogger, tensorData, Trainer, type DataSource, type TapfitPlugin } from '../../src';
import { tmpDir, useBackend } from '../fixtures';
import { blobTensors, softmaxModel } from './helpers';

const options = () => ({ model: softmaxModel(), loss: 'categoricalCrossentropy' as const, optimizer: sgd({ lr: 0.1, momentum: 0.9 }), logger: new SilentLogger(), seed: 3 });
const fitOptions = { epochs: 2, batchSize: 8, verbose: 0 as const };
const weightsOf = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync())); // by position: auto-named layers differ per build
/** Disposes the trainer and the model it was given (the trainer leaves the caller's model alone). */
const done = (t: Trainer) => {
  t.dispose();
  t.model.layersModel?.dispose();
};
const refusal = /epoch 0 was stopped after 4 batch\(es\) run with batchSize 8, shuffle true, and this fit asks for batchSize 4.*Continue the epoch with batchSize 8, shuffle true/;

/**
 * x and y as a data source whose read of batch 4 of epoch 0 throws (a file that turns out
 * truncated): the fit dies after batch 3's step, before batch 4's. Its iterator's return()
 * is passed on, so the tensors the source holds are freed as usual.
 */
function failingRead(x: tf.Tensor, y: tf.Tensor): DataSource {
  const inner = tensorData(x, y);
  let thrown = false;
  return {
    size: inner.size,
    xShape: inner.xShape,
    batches(o) {
      const it = inner.batches(o) as Iterator<{ x: tf.Tensor; y: tf.Tensor }>;
      let read = 0;
      return {
        next: () => (o.epoch === 0 && read++ === 4 - (o.startBatch ?? 0) && !thrown ? ((thrown = true), fail()) : it.next()),
        return: (v?: unknown) => it.return?.(v) ?? { done: true, value: undefined },
      };
    },
  };
}

/** The ways a fit dies at batch 3 of epoch 0 (after that batch's step): a callback, a plugin's tap (a checkpoint save that fails), or the data's read of the next batch. */
const failures: Record<string, (x: tf.Tensor, y: tf.Tensor) => { plugins: TapfitPlugin[]; callbacks?: { onBatchEnd: (b: number) => Promise<void> }; data?: DataSource }> = {
  'a callback': () => {
    let thrown = false;
    return { plugins: [], callbacks: { onBatchEnd: async (b) => void (b === 3 && !thrown && ((thrown = true), fail())) } };
  },
  "a plugin's batchEnd tap": () => {
    let thrown = false;
    const plugin: TapfitPlugin = { name: 'saver', core: '*', apply: ({ hooks }) => hooks.batchEnd.tap('saver', (i) => void (i.step === 3 && !thrown && ((thrown = true), fail()))) };
    return { plugins: [plugin] };
  },
  "the data source's read of batch 4": (x, y) => ({ plugins: [], data: failingRead(x, y) }),
};
function fail(): never {
  throw new Error('ENOSPC: no space left on device');
}

describe('a failed fit leaves the position as a straight run needs it', () => {
  useBackend('cpu');
  const { x, y, labels } = blobTensors(64);
  after(() => tf.dispose([x, y, labels]));

  let straight: { weights: ReturnType<typeof weightsOf>; loss: number[] };
  before(async () => {
    const t = new Trainer(options());
    const h = await t.fit(x, y, fitOptions);
    straight = { weights: weightsOf(t), loss: h.history.loss };
    done(t);
  });

  /** A trainer whose first fit died at batch 3 of epoch 0. */
  async function failedAtBatch3(how: string): Promise<Trainer> {
    const { plugins, callbacks, data } = failures[how](x, y);
    const t = new Trainer({ ...options(), plugins });
    const err = await (data ? t.fit(data, { ...fitOptions, callbacks }) : t.fit(x, y, { ...fitOptions, callbacks })).then(() => expect.fail('the fit did not fail'), (e: Error) => e);
    expect(err.message).to.contain('ENOSPC: no space left on device'); // the fit's own error (a plugin's names the plugin)
    expect(t.step).to.equal(4);
    return t;
  }

  for (const how of Object.keys(failures)) {
    it(`cut by ${how} mid-epoch: the same fit again ends where the straight run ends (weights bit for bit, epoch 0's logged loss over all its batches)`, async () => {
      const before = tf.memory().numTensors;
      const t = await failedAtBatch3(how);
      expect(t.position).to.deep.include({ epoch: 0, batch: 4 });
      expect(t.position.epochSoFar).to.include({ batchSize: 8, shuffle: true, samples: 32, dataSize: 64 });
      const h = await t.fit(x, y, fitOptions);
      expect(h.epoch).to.deep.equal([0, 1]);
      expect(h.history.loss).to.deep.equal(straight.loss);
      expect(weightsOf(t)).to.deep.equal(straight.weights);
      done(t);
      expect(tf.memory().numTensors).to.equal(before);
    });

    it(`cut by ${how} mid-epoch: continuing with another batchSize is refused as after stop(), and nothing trains`, async () => {
      const t = await failedAtBatch3(how);
      await t.fit(x, y, { ...fitOptions, batchSize: 4 }).then(
        () => expect.fail('continued the cut epoch with batchSize 4'),
        (e: Error) => expect(e.message).to.match(refusal),
      );
      expect(t.step).to.equal(4);
      done(t);
    });
  }

  it('cut mid-epoch, saved and resumed: the resumed fit ends where the straight run ends, and another batchSize is refused', async () => {
    const t = await failedAtBatch3('a callback');
    const dir = tmpDir();
    await t.save(dir);
    done(t);
    const other = await Trainer.resume(dir, options());
    await other.fit(x, y, { ...fitOptions, batchSize: 4 }).then(
      () => expect.fail('the resumed fit continued the cut epoch with batchSize 4'),
      (e: Error) => expect(e.message).to.match(refusal),
    );
    done(other);
    const resumed = await Trainer.resume(dir, options());
    const h = await resumed.fit(x, y, fitOptions);
    expect(h.history.loss).to.deep.equal(straight.loss);
    expect(weightsOf(resumed)).to.deep.equal(straight.weights);
    done(resumed);
  });

  it("when the sums cannot be read back on the failure path (a failing backend), the fit's own error is thrown and the batching is still recorded", async () => {
    const before = tf.memory().numTensors;
    const proto = tf.Tensor.prototype as unknown as { data: () => Promise<unknown> };
    const data = proto.data;
    const t = new Trainer(options());
    const breakReads = async (b: number) => {
      if (b !== 3) return;
      proto.data = () => Promise.reject(new Error('backend lost'));
      fail();
    };
    try {
      await t.fit(x, y, { ...fitOptions, callbacks: { onBatchEnd: breakReads } }).then(
        () => expect.fail('the fit did not fail'),
        (e: Error) => expect(e.message).to.equal('ENOSPC: no space left on device'),
      );
    } finally {
      proto.data = data;
    }
    // The sums are dropped (the epoch's mean then covers its rest), the batching is not.
    expect(t.position).to.deep.include({ epoch: 0, batch: 4 });
    expect(t.position.epochSoFar).to.include({ batchSize: 8, shuffle: true, samples: 0 });
    await t.fit(x, y, { ...fitOptions, batchSize: 4 }).then(
      () => expect.fail('continued the cut epoch with batchSize 4'),
      (e: Error) => expect(e.message).to.match(refusal),
    );
    await t.fit(x, y, fitOptions);
    expect(weightsOf(t)).to.deep.equal(straight.weights);
    done(t);
    expect(tf.memory().numTensors).to.equal(before);
  });

  describe('a fit refused before its first step leaves the position as it was', () => {
    /** Data whose first read fails (a missing shard), or whose first batch the model refuses. */
    const refusedData = {
      'the first read fails': () =>
        datasetData(
          tf.data.generator(function* (): Generator<{ xs: tf.Tensor; ys: tf.Tensor }> {
            throw new Error('ENOENT: shard-000.bin');
          }),
        ),
      'the first batch is refused by the model (5 features for its 4)': () => datasetData(tf.data.array([{ xs: [1, 2, 3, 4, 5], ys: [1, 0, 0] }]).repeat(16)),
      'the first batch is refused by fit (batches of batches)': () => datasetData(tf.data.array([{ xs: [[1, 2, 3, 4]], ys: [1, 0, 0] }]).repeat(16)),
    };

    for (const [what, make] of Object.entries(refusedData)) {
      it(`${what}, with initialEpoch: the next fit trains the epoch after the last one trained, as a straight run`, async () => {
        const reference = new Trainer(options());
        await reference.fit(x, y, { ...fitOptions, epochs: 3 });
        const before = tf.memory().numTensors;
        const t = new Trainer(options());
        await t.fit(x, y, fitOptions);
        const position = t.position;
        await t.fit(make(), { epochs: 10, initialEpoch: 8, batchSize: 8 }).then(
          () => expect.fail('the fit was not refused'),
          (e: Error) => e,
        );
        expect(t.position).to.deep.equal(position);
        expect(t.step).to.equal(16);
        const h = await t.fit(x, y, { ...fitOptions, epochs: 1 });
        expect(h.epoch).to.deep.equal([2]);
        expect(weightsOf(t)).to.deep.equal(weightsOf(reference));
        done(t);
        expect(tf.memory().numTensors).to.equal(before);
        done(reference);
      });
    }

    it('after Trainer.resume: the fit that was cut, run again after a refused one, still finishes its schedule', async () => {
      const reference = new Trainer(options());
      await reference.fit(x, y, { ...fitOptions, epochs: 4 });
      const t = new Trainer(options());
      await t.fit(x, y, fitOptions);
      const dir = tmpDir();
      await t.save(dir);
      done(t);
      const resumed = await Trainer.resume(dir, options());
      await resumed.fit(refusedData['the first read fails'](), { epochs: 1, batchSize: 8 }).then(
        () => expect.fail('the fit was not refused'),
        (e: Error) => e,
      );
      expect(resumed.position).to.deep.equal({ epoch: 2, batch: 0 });
      const h = await resumed.fit(x, y, { ...fitOptions, epochs: 4 }); // the cut fit again: epochs is its final epoch
      expect(h.epoch).to.deep.equal([2, 3]);
      expect(weightsOf(resumed)).to.deep.equal(weightsOf(reference));
      done(resumed);
      done(reference);
    });
  });
});
