import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, modelVariables, sgd, TapfitError, Trainer } from '@tapfit/core';
import { blobData, describeConformance, testTrainer, testTrainerOptions } from '@tapfit/core/testing';
import { applyLoraToSegments, lora } from '../src';
import { maxAbsDiff, rejected, sameValues, useCpu } from './helpers';
import { denseSegments, disposeModel } from './segment-helpers';

const options = { targets: 'fc1', rank: 2, alpha: 4, seed: 7, modulesToSave: 'head' } as const;

// The same suite the layers plugin passes, on two hand-written dense segments.
describeConformance({
  plugin: () => lora(options),
  trainer: () => ({ model: denseSegments() }),
  twin: () => ({ model: applyLoraToSegments(denseSegments(), options).model }),
  twinTolerance: 0,
});

/** The plugin's segment handle when setup built one (a refused resume may stop before), else undefined. */
function builtHandle(p: ReturnType<typeof lora>): ReturnType<typeof lora>['segmentLora'] | undefined {
  try {
    return p.segmentLora;
  } catch {
    return undefined;
  }
}

describe('lora plugin on a segment model', () => {
  useCpu();

  it('does the surgery at setup: A and B are the only trainer variables, they learn (sgd), W and b stay as they were', async () => {
    const base = denseSegments();
    const [W, b] = base.segments[0].params;
    const [W0, b0] = [tf.clone(W), tf.clone(b)];
    const plugin = lora({ targets: 'fc1', rank: 2, seed: 1 });
    const trainer = testTrainer({ model: base, plugins: [plugin], optimizer: sgd({ lr: 0.5 }) });
    await trainer.setup();
    const handle = plugin.segmentLora;
    expect(() => plugin.lora).to.throw(/^lora: plugin\.lora is the handle of a tfjs-layers model, and this trainer's model was adapted through its segments: use plugin\.segmentLora \(or plugin\.handle, either kind\)\.$/);
    expect(plugin.handle).to.equal(handle);
    expect(trainer.model.segments).to.equal(handle.model.segments);
    const { A, B } = handle.adapters[0];
    expect(Object.values(trainer.variables)).to.have.members([A, B]).and.have.length(2);
    expect(trainer.describe({ print: false }).trainableParams).to.equal(2 * (4 + 6));
    const [A0, B0] = [tf.clone(A), tf.clone(B)];
    const data = blobData(48);
    const before = await trainer.evaluate(data);
    await trainer.fit(data, { epochs: 3, batchSize: 8 });
    const after = await trainer.evaluate(data);
    expect(after.loss).to.be.below(before.loss);
    expect(sameValues(W, W0)).to.equal(true); // frozen base, bit for bit
    expect(sameValues(b, b0)).to.equal(true); // not a target, not in modulesToSave: frozen too
    expect(maxAbsDiff(A, A0)).to.be.above(0);
    expect(maxAbsDiff(B, B0)).to.be.above(0);
    tf.dispose([W0, b0, A0, B0]);
    data.dispose();
    trainer.dispose(); // the trainer owns what setup swapped in: A, B freed, base unfrozen
    expect(A.isDisposed).to.equal(true);
    expect(modelVariables(base).every((v) => v.trainable)).to.equal(true);
    disposeModel(base);
  });

  it('logs its plan at setup only with verbose: true', async () => {
    const lines: string[] = [];
    const logger = { info: (s: string) => lines.push(s), warn: (s: string) => lines.push(s) };
    const setUp = async (verbose: boolean) => {
      const base = denseSegments();
      const plugin = lora({ targets: 'fc1', rank: 2, seed: 1, verbose });
      const trainer = testTrainer({ model: base, plugins: [plugin], logger });
      await trainer.setup();
      const plan = plugin.segmentLora.describe();
      trainer.dispose();
      disposeModel(base);
      return plan;
    };
    await setUp(false);
    expect(lines.filter((l) => l.startsWith('LoRA plan'))).to.deep.equal([]);
    const plan = await setUp(true);
    expect(plan).to.match(/^LoRA plan \(rank 2\):\nvariable +class[\s\S]*\nfc1\/param0 +Variable +4x6/);
    expect(lines.filter((l) => l.startsWith('LoRA plan'))).to.deep.equal([plan]);
  });

  it('reports unmatched targets at setup, listing the segment variables', async () => {
    const base = denseSegments();
    const trainer = testTrainer({ model: base, plugins: [lora({ targets: 'q_proj', rank: 2 })] });
    try {
      await trainer.setup();
      expect.fail('setup should fail');
    } catch (err) {
      expect((err as Error).message).to.match(/targets selector 'q_proj' matches no variable[\s\S]*Variables of this segment model: fc1\/param0 \(4x6\), fc1\/param1 \(6\), head\/param0 \(6x3, output head\)/);
    }
    expect(modelVariables(base).every((v) => v.trainable)).to.equal(true);
    disposeModel(base);
  });

  it('refuses to resume a checkpoint made with another LoRA configuration', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-seg-ckpt-'));
    const plugin = lora({ targets: 'fc1', rank: 2, seed: 1 });
    const t = testTrainer({ model: denseSegments(), plugins: [plugin] });
    const data = blobData(16);
    await t.fit(data, { epochs: 1, batchSize: 8 });
    await t.save(dir);
    const other = lora({ targets: 'fc1', rank: 2, alpha: 8, seed: 1 });
    try {
      await Trainer.resume(dir, testTrainerOptions({ model: denseSegments(), plugins: [other] }));
      expect.fail('resume should fail');
    } catch (err) {
      expect((err as Error).message).to.match(/lora: the checkpoint was trained with LoRA .*"alpha":4.*"targets":\["fc1\/param0"\].* but this trainer applies .*"alpha":8/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      data.dispose();
      t.dispose();
      plugin.segmentLora.dispose();
      builtHandle(other)?.dispose();
    }
  });

  it('refuses a resume with other modulesToSave, naming both, before anything is written', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-seg-ckpt-'));
    const data = blobData(16);
    const t = testTrainer({ model: denseSegments(), plugins: [lora({ targets: 'fc1', rank: 2, seed: 1, modulesToSave: 'head' })], optimizer: sgd({ lr: 0.1 }) });
    await t.fit(data, { epochs: 1, batchSize: 8 });
    await t.save(dir);
    const base = denseSegments();
    const values = modelVariables(base).map((v) => Array.from(v.dataSync()));
    const other = lora({ targets: 'fc1', rank: 2, seed: 1 });
    try {
      const err = await rejected(Trainer.resume(dir, testTrainerOptions({ model: base, plugins: [other], optimizer: sgd({ lr: 0.1 }) })));
      expect((err as TapfitError).code).to.equal(ErrorCodes.CHECKPOINT);
      expect(err.message).to.match(/"modulesToSave":\["head\/param0","head\/param1"\].* but this trainer applies .*"modulesToSave":\[\].*\(modulesToSave differ\)/);
      expect(modelVariables(base).map((v) => Array.from(v.dataSync()))).to.deep.equal(values);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
      data.dispose();
      t.dispose();
      builtHandle(other)?.dispose();
      disposeModel(base);
    }
  });

  it('refuses to checkpoint while merged; unmerged, a resume reproduces the trained outputs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-seg-ckpt-'));
    const data = blobData(16);
    const plugin = lora({ targets: 'fc1', rank: 2, seed: 1 });
    const t = testTrainer({ model: denseSegments(), plugins: [plugin], optimizer: sgd({ lr: 0.5 }) });
    await t.fit(data, { epochs: 3, batchSize: 8 });
    const x = tf.randomNormal([4, 4], 0, 1, 'float32', 9);
    const trained = t.predict(x);
    plugin.segmentLora.merge();
    const err = await rejected(t.save(dir));
    expect((err as TapfitError).code).to.equal(ErrorCodes.STATE);
    expect(err.message).to.match(/^lora: cannot save a checkpoint while adapter 'default' is merged .*call plugin\.segmentLora\.unmerge\(\) first/);
    plugin.segmentLora.unmerge();
    const unmerged = t.predict(x);
    expect(maxAbsDiff(unmerged, trained)).to.be.below(1e-5);
    await t.save(dir);
    const base = denseSegments();
    const r = await Trainer.resume(dir, testTrainerOptions({ model: base, plugins: [lora({ targets: 'fc1', rank: 2, seed: 1 })], optimizer: sgd({ lr: 0.5 }) }));
    const resumed = r.predict(x);
    expect(sameValues(resumed, unmerged)).to.equal(true);
    tf.dispose([x, trained, unmerged, resumed]);
    fs.rmSync(dir, { recursive: true, force: true });
    data.dispose();
    r.dispose();
    t.dispose();
    disposeModel(base);
  });
});
