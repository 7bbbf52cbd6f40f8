// An evaluation that swaps a plugin's evaluation weights in (an EMA's) and is not awaited
// (started from a callback, a timer) while the model trains: the fit waits for it to swap
// back before its next step, and trainStep refuses, so no update lands on the swapped-in
// weights only to be dropped when evaluateEnd puts the training weights back.

import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, Trainer, trainableVariables, type TapfitPlugin } from '../src';
import { blobData, testTrainerOptions, tinyModel } from '../src/testing';
import { thrown, tmpDir, useBackend } from './fixtures';
import { emaSwap } from './fixtures/ema-swap';

const values = (vs: readonly tf.Variable[]) => vs.map((v) => Array.from(v.dataSync()));

/** Records the trainer's step when the evaluation taps run (registered after the EMA, so it sees the weights swapped in). */
function stepProbe(at: { start: number[]; end: number[] }, onStart?: () => void, onEnd?: () => void): TapfitPlugin {
  return {
    name: 'step-probe',
    core: '*',
    apply: ({ hooks, trainer }) => {
      hooks.evaluateStart.tap('step-probe', () => {
        at.start.push(trainer.step);
        onStart?.();
      });
      hooks.evaluateEnd.tap('step-probe', () => {
        at.end.push(trainer.step);
        onEnd?.();
      });
    },
  };
}

type Run = { loss: number[]; weights: number[][]; evaluated?: Record<string, number>; at: { start: number[]; end: number[] } };

/**
 * Two epochs of 8 steps with the EMA swap. `during`: an evaluate(data) started in onBatchEnd
 * after the second step and not awaited; `awaitedAtStep`: one awaited in onBatchEnd once the
 * trainer has made that many steps (the oracle for what the evaluation should see).
 */
async function run(mode: { during?: boolean; awaitedAtStep?: number } = {}): Promise<Run> {
  const data = blobData(64);
  const validation = blobData(256, { seed: 5 }); // 32 batches: the evaluation awaits between them while the fit goes on
  const at = { start: [] as number[], end: [] as number[] };
  const model = tinyModel();
  const trainer = new Trainer(testTrainerOptions({ model, plugins: [emaSwap(), stepProbe(at)] }));
  let pending: Promise<Record<string, number>> | undefined;
  let evaluated: Record<string, number> | undefined;
  const history = await trainer.fit(data, {
    epochs: 2,
    batchSize: 8,
    callbacks: {
      onBatchEnd: async (batch) => {
        if (mode.during && batch === 1 && !pending) pending = trainer.evaluate(validation, { batchSize: 8 });
        if (trainer.step === mode.awaitedAtStep && !evaluated) evaluated = await trainer.evaluate(validation, { batchSize: 8 });
      },
    },
  });
  if (pending) evaluated = await pending;
  const out = { loss: history.history.loss, weights: values(trainableVariables(trainer.model)), evaluated, at };
  trainer.dispose();
  model.dispose();
  data.dispose();
  validation.dispose();
  return out;
}

describe('an evaluation with evaluation weights swapped in, running while the model trains', () => {
  useBackend('cpu');

  it('evaluate(data) started in onBatchEnd and not awaited: the fit waits for it to swap back, so the run equals one without it, and the evaluation scores that point of the run', async () => {
    const before = tf.memory().numTensors;
    const plain = await run();
    const during = await run({ during: true });
    expect(during.at.start).to.have.length(1);
    const k = during.at.start[0];
    expect(k, 'started after the second step, before the fit ended').to.be.within(2, 15);
    expect(during.at.end, 'no step between evaluateStart and evaluateEnd').to.deep.equal([k]);
    // Bit for bit (cpu): no update was made on the EMA weights and then dropped by evaluateEnd.
    expect(during.loss).to.deep.equal(plain.loss);
    expect(during.weights).to.deep.equal(plain.weights);
    // The oracle: the same run with an evaluation awaited once the trainer had made k steps.
    const oracle = await run({ awaitedAtStep: k });
    expect(oracle.at.start).to.deep.equal([k]);
    expect(oracle.weights).to.deep.equal(plain.weights);
    expect(during.evaluated).to.deep.equal(oracle.evaluated);
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('a fit started while an evaluation has its weights swapped in takes its first step once they are swapped back', async () => {
    const before = tf.memory().numTensors;
    const data = blobData(64);
    const validation = blobData(256, { seed: 5 });
    const finalWeights = async (evaluateFirst: boolean) => {
      const model = tinyModel();
      const trainer = new Trainer(testTrainerOptions({ model, plugins: [emaSwap()] }));
      await trainer.setup();
      const evaluation = evaluateFirst ? trainer.evaluate(validation, { batchSize: 8 }) : undefined;
      await Promise.all([trainer.fit(data, { epochs: 1, batchSize: 8 }), evaluation]);
      const w = values(trainableVariables(trainer.model));
      trainer.dispose();
      model.dispose();
      return w;
    };
    expect(await finalWeights(true)).to.deep.equal(await finalWeights(false));
    data.dispose();
    validation.dispose();
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('a save() started as that evaluation swaps back (while the fit waits for it) holds one step\'s state: resuming it equals the run without either', async () => {
    const before = tf.memory().numTensors;
    const data = blobData(64);
    const validation = blobData(256, { seed: 5 });
    const dir = tmpDir();
    const options = (model: tf.LayersModel, plugins: TapfitPlugin[]) => testTrainerOptions({ model, plugins: [emaSwap(), ...plugins] });
    const plain = await run();
    const at = { start: [] as number[], end: [] as number[] };
    let saving: Promise<string> | undefined;
    const model = tinyModel();
    // The save starts in the last evaluateEnd tap: the fit is waiting for the evaluation, and must then wait for the save's read too.
    const trainer = new Trainer(options(model, [stepProbe(at, undefined, () => void (saving ??= trainer.save(dir)))]));
    let pending: Promise<unknown> | undefined;
    await trainer.fit(data, { epochs: 2, batchSize: 8, callbacks: { onBatchEnd: (batch) => void (batch === 1 && !pending ? (pending = trainer.evaluate(validation, { batchSize: 8 })) : undefined) } });
    await pending;
    expect(path.basename(await saving!), 'the checkpoint of the step the evaluation saw').to.equal(`step-${at.end[0]}`);
    trainer.dispose();
    const again = tinyModel();
    const resumed = await Trainer.resume(dir, options(again, []));
    await resumed.fit(data, { epochs: 2, batchSize: 8 });
    expect(values(trainableVariables(resumed.model))).to.deep.equal(plain.weights);
    resumed.dispose();
    [model, again].forEach((m) => m.dispose());
    data.dispose();
    validation.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('trainOnBatch waits the same way: a save() started as the evaluation swaps back holds the state before the update, and resuming it then updating equals the update', async () => {
    const before = tf.memory().numTensors;
    const data = blobData(16);
    const validation = blobData(256, { seed: 5 });
    const dir = tmpDir();
    const options = (model: tf.LayersModel, plugins: TapfitPlugin[]) => testTrainerOptions({ model, plugins: [emaSwap(), ...plugins] });
    const at = { start: [] as number[], end: [] as number[] };
    let saving: Promise<string> | undefined;
    const model = tinyModel();
    const trainer = new Trainer(options(model, [stepProbe(at, undefined, () => void (saving ??= trainer.save(dir)))]));
    await trainer.setup();
    const raw = values(trainableVariables(trainer.model));
    const evaluation = trainer.evaluate(validation, { batchSize: 8 });
    await Promise.all([evaluation, trainer.trainOnBatch(data.x, data.y)]);
    expect(at).to.deep.equal({ start: [0], end: [0] });
    expect(path.basename(await saving!)).to.equal('step-0');
    const updated = values(trainableVariables(trainer.model));
    expect(updated).to.not.deep.equal(raw);
    trainer.dispose();
    const again = tinyModel();
    const resumed = await Trainer.resume(dir, options(again, []));
    expect(values(trainableVariables(resumed.model))).to.deep.equal(raw);
    await resumed.trainOnBatch(data.x, data.y);
    expect(values(trainableVariables(resumed.model))).to.deep.equal(updated);
    resumed.dispose();
    [model, again].forEach((m) => m.dispose());
    data.dispose();
    validation.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('trainStep while an evaluation has its weights swapped in is refused (TAPFIT_E_STATE, naming the fix) and leaves the weights and the batch alone', async () => {
    const before = tf.memory().numTensors;
    const data = blobData(32);
    const validation = blobData(256, { seed: 5 });
    let swappedIn!: () => void;
    const started = new Promise<void>((resolve) => (swappedIn = resolve));
    const model = tinyModel();
    const trainer = new Trainer(testTrainerOptions({ model, plugins: [emaSwap(), stepProbe({ start: [], end: [] }, () => swappedIn())] }));
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    const raw = values(trainableVariables(trainer.model));
    const x = data.x.slice(0, 8);
    const y = data.y.slice(0, 8);
    const evaluation = trainer.evaluate(validation, { batchSize: 8 });
    await started; // evaluateStart has run: the EMA weights are in the model
    const err = thrown(() => trainer.trainStep({ x, y }, { epoch: 1, batch: 0, step: trainer.step }));
    expect(err.code).to.equal(ErrorCodes.STATE);
    expect(err.message).to.match(/^trainStep\(\): an evaluation .* is running/);
    expect(err.message).to.match(/await the evaluation first/);
    expect(trainer.step).to.equal(4);
    await evaluation;
    expect(values(trainableVariables(trainer.model))).to.deep.equal(raw);
    // Once it is awaited the same batch trains (the caller's x and y were left alone).
    const { loss } = trainer.trainStep({ x, y }, { epoch: 1, batch: 0, step: trainer.step });
    expect(trainer.step).to.equal(5);
    loss.dispose();
    tf.dispose([x, y]);
    trainer.dispose();
    model.dispose();
    data.dispose();
    validation.dispose();
    expect(tf.memory().numTensors).to.equal(before);
  });
  it('trainStep while a save() not yet awaited reads the state is refused (TAPFIT_E_STATE): the checkpoint holds the state before it, and the same batch trains once the save is awaited', async () => {
    const before = tf.memory().numTensors;
    const data = blobData(32);
    const dir = tmpDir();
    const model = tinyModel();
    const trainer = new Trainer(testTrainerOptions({ model }));
    await trainer.fit(data, { epochs: 1, batchSize: 8 });
    const raw = values(trainableVariables(trainer.model));
    const x = data.x.slice(0, 8);
    const y = data.y.slice(0, 8);
    const saving = trainer.save(dir); // not awaited: a custom loop going on at once
    const err = thrown(() => trainer.trainStep({ x, y }, { epoch: 1, batch: 0, step: trainer.step }));
    expect(err.code).to.equal(ErrorCodes.STATE);
    expect(err.message).to.match(/^trainStep\(\): a save\(\) not yet awaited is reading the state/);
    expect(err.message).to.match(/await the save first/);
    expect(trainer.step).to.equal(4);
    const saved = await saving;
    expect(values(trainableVariables(trainer.model))).to.deep.equal(raw);
    const { loss } = trainer.trainStep({ x, y }, { epoch: 1, batch: 0, step: trainer.step });
    expect(trainer.step).to.equal(5);
    loss.dispose();
    // The checkpoint is the state before that step: resumed, it holds the raw weights.
    const resumed = await Trainer.resume(saved, testTrainerOptions({ model: tinyModel() }));
    expect(resumed.step).to.equal(4);
    expect(values(trainableVariables(resumed.model))).to.deep.equal(raw);
    resumed.model.layersModel?.dispose();
    resumed.dispose();
    tf.dispose([x, y]);
    trainer.dispose();
    model.dispose();
    data.dispose();
    fs.rmSync(dir, { recursive: true, force: true });
    expect(tf.memory().numTensors).to.equal(before);
  });
});
