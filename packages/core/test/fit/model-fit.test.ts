// trainer.fit speaks model.fit: the same call, the same history (keys and values), the
// same callbacks, validation split and class weights, checked against tfjs's own model.fit.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, datasetData, segmentModel, sgd, SilentLogger, tensorData, TapfitError, Trainer, type Segment } from '../../src';
import { useBackend } from '../fixtures';
import { blobTensors, countReads, expectHistoryClose, recordingLogger, softmaxModel } from './helpers';

const compiled = (optimizer: string, extra: Partial<tf.ModelCompileArgs> = {}) => {
  const model = softmaxModel();
  model.compile({ optimizer, loss: 'categoricalCrossentropy', metrics: ['accuracy'], ...extra });
  return model;
};

const trainerFor = (optimizer: string, extra: Partial<ConstructorParameters<typeof Trainer>[0]> = {}) =>
  new Trainer({ model: softmaxModel(), loss: 'categoricalCrossentropy', optimizer, metrics: ['accuracy'], logger: new SilentLogger(), ...extra });

describe('fit(x, y, options) as model.fit', () => {
  useBackend('cpu');

  it('the same call gives the same history as model.fit: keys, epochs, params and values', async () => {
    const { x, y, labels } = blobTensors(64);
    const options = { epochs: 4, batchSize: 16, shuffle: false, validationSplit: 0.25, verbose: 0 as const };
    const reference = await compiled('rmsprop').fit(x, y, options);
    const t = trainerFor('rmsprop');
    const h = await t.fit(x, y, options);
    expect(Object.keys(h.history).sort()).to.deep.equal(['acc', 'loss', 'val_acc', 'val_loss']);
    expect(h.epoch).to.deep.equal(reference.epoch);
    expectHistoryClose(h.history, reference.history as Record<string, number[]>);
    expect(h.params).to.deep.include({ epochs: 4, initialEpoch: 0, samples: 48, batchSize: 16, doValidation: true });
    expect(h.params.metrics).to.deep.equal(['loss', 'acc', 'val_loss', 'val_acc']);
    expect(x.isDisposed || y.isDisposed, 'the caller keeps its tensors').to.equal(false);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it("history values are float32 numbers, as model.fit's are (it divides on the device), within float32 rounding of model.fit's", async () => {
    const { x, y, labels } = blobTensors(60);
    const options = { epochs: 3, batchSize: 16, shuffle: false, validationSplit: 0.2, verbose: 0 as const };
    const reference = await compiled('sgd').fit(x, y, options);
    const t = trainerFor('sgd');
    const h = await t.fit(x, y, options);
    for (const [k, values] of Object.entries(h.history)) {
      for (const v of values) expect(Math.fround(v), `${k} ${v} is a float32 value`).to.equal(v);
      expect(Object.values(reference.history[k] as number[]).every((e) => e === Math.fround(e)), `model.fit's ${k}`).to.equal(true);
    }
    expectHistoryClose(h.history, reference.history as Record<string, number[]>, 2e-7); // the sums' order may differ by an ulp
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it("a tfjs-layers model's weight penalties (kernel and bias regularizers) are in the loss and the gradients as model.fit puts them: the same history and weights, Sequential and functional", async () => {
    const { x, y, labels } = blobTensors(32);
    const reg = { kernelRegularizer: tf.regularizers.l1l2({ l1: 0.01, l2: 0.05 }), biasRegularizer: tf.regularizers.l2({ l2: 0.1 }) };
    const sequential = () => tf.sequential({ layers: [
      tf.layers.dense({ inputShape: [4], units: 8, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), biasInitializer: 'ones', ...reg }),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }), kernelRegularizer: tf.regularizers.l2({ l2: 0.2 }) }),
    ] });
    const functional = () => {
      const input = tf.input({ shape: [4] });
      const hidden = tf.layers.dense({ units: 8, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }), ...reg }).apply(input) as tf.SymbolicTensor;
      return tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 6 }) }).apply(hidden) as tf.SymbolicTensor });
    };
    for (const build of [sequential, functional]) {
      const options = { epochs: 3, batchSize: 8, shuffle: false, verbose: 0 as const };
      const reference = build();
      reference.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy' });
      const expected = await reference.fit(x, y, options);
      const model = build();
      const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), logger: new SilentLogger() });
      const h = await t.fit(x, y, options);
      expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
      reference.getWeights().forEach((w, i) => expect(Array.from(model.getWeights()[i].dataSync()), `weight ${i}`).to.deep.equal(Array.from(w.dataSync())));
      t.dispose();
      reference.dispose();
      model.dispose();
    }
    tf.dispose([x, y, labels]);
  });

  it("weight penalties inside a nested Sequential, and of a layer applied twice, are in the loss as model.fit counts them (per application); describe() lists the nested layers", async () => {
    const { x, y, labels } = blobTensors(32);
    const l2 = (l2: number) => tf.regularizers.l2({ l2 });
    const init = (seed: number) => tf.initializers.glorotUniform({ seed });
    const inner = (penalty: boolean) =>
      tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 8, activation: 'tanh', kernelInitializer: init(3), ...(penalty ? { kernelRegularizer: l2(0.05) } : {}), name: 'inner_dense' })] });
    const builds: Record<string, () => tf.LayersModel> = {
      'a Sequential nested first in a Sequential, penalty only inside': () =>
        tf.sequential({ layers: [inner(true), tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(4) })] }),
      'a Sequential nested first in a Sequential, penalties on both levels': () =>
        tf.sequential({ layers: [inner(true), tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(4), kernelRegularizer: l2(0.1), name: 'outer_dense' })] }),
      'a Sequential nested after the first layer': () =>
        tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 4, kernelInitializer: init(5) }), tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3, activation: 'softmax', kernelInitializer: init(6), kernelRegularizer: l2(0.05), name: 'inner_dense' })] })] }),
      'a regularized Dense applied twice (shared): counted per application': () => {
        const input = tf.input({ shape: [4] });
        const shared = tf.layers.dense({ units: 4, activation: 'tanh', kernelInitializer: init(7), kernelRegularizer: l2(0.05), name: 'inner_dense' });
        const h = shared.apply(shared.apply(input)) as tf.SymbolicTensor;
        return tf.model({ inputs: input, outputs: tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: init(8) }).apply(h) as tf.SymbolicTensor });
      },
    };
    for (const [name, build] of Object.entries(builds)) {
      const options = { epochs: 3, batchSize: 8, shuffle: false, verbose: 0 as const };
      const reference = build();
      reference.compile({ optimizer: tf.train.sgd(0.2), loss: 'categoricalCrossentropy' });
      const expected = await reference.fit(x, y, options);
      const model = build(); // seeded: the weights the reference started from
      const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.2 }), logger: new SilentLogger() });
      const h = await t.fit(x, y, options);
      try {
        expectHistoryClose(h.history, expected.history as Record<string, number[]>, 1e-6);
      } catch (err) {
        throw new Error(`${name}: ${(err as Error).message}`);
      }
      // Bit for bit, except the shared layer: its two penalty terms are summed before the
      // loss here and one by one into it in model.fit, so the last bit can round apart.
      const tolerance = name.includes('twice') ? 1e-6 : 0;
      reference.getWeights().forEach((w, i) => {
        const actual = model.getWeights()[i].dataSync();
        w.dataSync().forEach((e, j) => expect(actual[j], `${name}: weight ${i}[${j}]`).to.be.closeTo(e, tolerance));
      });
      expect(t.describe({ print: false }).penalties, name).to.include('inner_dense');
      t.dispose();
      reference.dispose();
      model.dispose();
    }
    tf.dispose([x, y, labels]);
  });

  it('validationSplit holds out the LAST fraction before shuffling', async () => {
    const { x, y, labels } = blobTensors(40);
    // lr 0: the weights never move, so val_loss is the loss of the held-out samples.
    const t = new Trainer({ model: softmaxModel(), loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0 }), metrics: ['accuracy'], logger: new SilentLogger() });
    const h = await t.fit(x, y, { epochs: 1, validationSplit: 0.25, verbose: 0 });
    const last = (await t.evaluate(tensorData(x.slice(30, 10), y.slice(30, 10)))) as Record<string, number>;
    const first = (await t.evaluate(tensorData(x.slice(0, 10), y.slice(0, 10)))) as Record<string, number>;
    const trainPart = (await t.evaluate(tensorData(x.slice(0, 30), y.slice(0, 30)))) as Record<string, number>;
    expect(h.history.val_loss[0]).to.be.closeTo(last.loss, 1e-6);
    expect(h.history.val_loss[0]).to.not.be.closeTo(first.loss, 1e-3);
    // Train logs are the training-mode values of the first 30 samples (dense + tanh: same as inference).
    expect(h.history.loss[0]).to.be.closeTo(trainPart.loss, 1e-6);
    expect(h.history.acc[0]).to.be.closeTo(trainPart.acc, 1e-6);
    expect(h.params.samples).to.equal(30);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('fit(data, options) gives the same history as fit(x, y, options)', async () => {
    const { x, y, labels } = blobTensors(40);
    const options = { epochs: 2, batchSize: 8, validationSplit: 0.25, verbose: 0 as const };
    const a = trainerFor('adam');
    const b = trainerFor('adam');
    const data = tensorData(x, y);
    expect((await b.fit(data, options)).history).to.deep.equal((await a.fit(x, y, options)).history);
    [a, b].forEach((t) => t.dispose());
    tf.dispose([x, y, labels]);
  });

  it('validationData as [x, y], arrays for x and y, and class-index labels', async () => {
    const { x, y, labels } = blobTensors(32);
    const t = trainerFor('adam');
    const xs = x.arraySync();
    const h = await t.fit(xs, Array.from(labels.dataSync()), { epochs: 2, batchSize: 8, validationData: [x, y], verbose: 0 });
    expect(Object.keys(h.history).sort()).to.deep.equal(['acc', 'loss', 'val_acc', 'val_loss']);
    expect(h.history.loss[1]).to.be.lessThan(h.history.loss[0]);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('classWeight weighs the loss per class as model.fit does', async () => {
    const { x, y, labels } = blobTensors(48);
    const options = { epochs: 3, batchSize: 12, shuffle: false, classWeight: { 0: 1, 1: 4, 2: 0.5 }, verbose: 0 as const };
    const reference = await compiled('sgd').fit(x, y, options);
    const t = trainerFor('sgd');
    const h = await t.fit(x, y, options);
    expectHistoryClose(h.history, reference.history as Record<string, number[]>);
    const missing = await t.fit(x, y, { classWeight: { 0: 1, 1: 2 }, verbose: 0 }).catch((e: TapfitError) => e);
    expect((missing as TapfitError).message).to.match(/classWeight must give a weight to each class 0..2 .*missing: 2/);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it("a tf.ModelFitArgs variable is taken as it is (the same history as model.fit); classWeight's per-output forms are refused naming the one-output form", async () => {
    const { x, y, labels } = blobTensors(48);
    const [vx, vy] = [x.slice(0, 12), y.slice(0, 12)];
    // Typed as tfjs's own, as a program that used model.fit keeps it.
    const args: tf.ModelFitArgs = { epochs: 2, batchSize: 12, shuffle: false, classWeight: { 0: 1, 1: 4, 2: 0.5 }, validationData: [vx, vy], verbose: 0 };
    const reference = await compiled('sgd').fit(x, y, args);
    const t = trainerFor('sgd');
    const h = await t.fit(x, y, args);
    expectHistoryClose(h.history, reference.history as Record<string, number[]>);
    const err = async (a: tf.ModelFitArgs) => (await t.fit(x, y, a).then(() => undefined, (e: TapfitError) => e))!;
    const step = t.step;
    for (const classWeight of [[{ 0: 1, 1: 4, 2: 0.5 }], { dense_Dense1: { 0: 1, 1: 4, 2: 0.5 } }]) {
      const refused = await err({ epochs: 1, classWeight, verbose: 0 });
      expect(refused.code).to.equal('TAPFIT_E_CONFIG');
      expect(refused.message).to.match(/option 'classWeight' is model\.fit's form for several outputs .* give one map of class index to weight, e\.g\. \{ 0: 1, 1: 5 \}/);
    }
    // Multi-input validationData stays refused at run time with its own message.
    expect((await err({ epochs: 1, validationData: [[vx], [vy]], verbose: 0 })).message).to.match(/validationData's x is a list of 1 tensor\(s\)/);
    expect(t.step, 'nothing trained by a refused fit').to.equal(step);
    t.dispose();
    tf.dispose([x, y, labels, vx, vy]);
  });

  it('a loss function returning one loss per sample trains as model.fit, which averages them: alone and with classWeight (the same history and weights)', async () => {
    const { x, y, labels } = blobTensors(48);
    const perSample = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.metrics.categoricalCrossentropy(yTrue, yPred); // [N]
    const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
    for (const extra of [{}, { classWeight: { 0: 1, 1: 4, 2: 0.5 } }]) {
      const options = { epochs: 3, batchSize: 12, shuffle: false, verbose: 0 as const, ...extra };
      const reference = compiled('sgd', { loss: perSample, metrics: [] });
      const expected = await reference.fit(x, y, options);
      const model = softmaxModel();
      const t = new Trainer({ model, loss: perSample, optimizer: 'sgd', logger: new SilentLogger() });
      const h = await t.fit(x, y, options);
      expectHistoryClose(h.history, expected.history as Record<string, number[]>);
      weightsOf(model).forEach((w, i) => w.forEach((v, j) => expect(v).to.be.closeTo(weightsOf(reference)[i][j], 1e-6)));
      t.dispose();
    }
    // A batch mean leaves classWeight nothing to weigh; a non-tensor is no loss.
    const scalar = new Trainer({ model: softmaxModel(), loss: (yt, yp) => tf.losses.meanSquaredError(yt, yp) as tf.Scalar, optimizer: 'sgd', logger: new SilentLogger() });
    const refused = await scalar.fit(x, y, { classWeight: { 0: 1, 1: 4, 2: 0.5 }, verbose: 0 }).catch((e: TapfitError) => e);
    expect((refused as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
    expect((refused as TapfitError).message).to.match(/classWeight with a loss function needs one loss per sample from it \(shape \[32\] for this batch\), but it returned shape \[\]/);
    const notATensor = new Trainer({ model: softmaxModel(), loss: (() => 0.5) as never, optimizer: 'sgd', logger: new SilentLogger() });
    const noLoss = await notATensor.fit(x, y, { verbose: 0 }).catch((e: TapfitError) => e);
    expect((noLoss as TapfitError).message).to.match(/the loss function returned number, not a tensor/);
    expect(scalar.step + notATensor.step).to.equal(0);
    scalar.dispose();
    notATensor.dispose();
    tf.dispose([x, y, labels]);
  });

  it('callbacks run in model.fit order with its logs; batch logs carry loss and metrics', async () => {
    const { x, y, labels } = blobTensors(16);
    const calls: string[] = [];
    const cb = {
      onTrainBegin: () => void calls.push('trainBegin'),
      onEpochBegin: (e: number) => void calls.push(`epochBegin ${e}`),
      onBatchBegin: (b: number, logs?: tf.Logs) => void calls.push(`batchBegin ${b} size ${logs!.size}`),
      onBatchEnd: (b: number, logs?: tf.Logs) => void calls.push(`batchEnd ${b} ${Object.keys(logs!).join(',')}`),
      onEpochEnd: (e: number, logs?: tf.Logs) => void calls.push(`epochEnd ${e} ${Object.keys(logs!).sort().join(',')}`),
      onTrainEnd: () => void calls.push('trainEnd'),
    };
    const t = trainerFor('sgd');
    await t.fit(x, y, { epochs: 2, batchSize: 8, validationSplit: 0.5, callbacks: [cb], verbose: 0 });
    const epoch = (e: number) => [`epochBegin ${e}`, 'batchBegin 0 size 8', 'batchEnd 0 batch,size,loss,acc', `epochEnd ${e} acc,loss,val_acc,val_loss`];
    expect(calls).to.deep.equal(['trainBegin', ...epoch(0), ...epoch(1), 'trainEnd']);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('a callback object may carry its own state and helper methods, and onYield, as under model.fit; a misspelt hook is refused', async () => {
    const { x, y, labels } = blobTensors(16);
    const options = { epochs: 3, batchSize: 8, shuffle: false, verbose: 0 as const };
    // A ported program's callbacks object: state, a helper method, a hook left undefined, model.fit's onYield.
    const recorder = () => {
      const state = {
        losses: [] as number[],
        label: 'run 1',
        record(loss: number) { state.losses.push(loss); },
        onEpochEnd: (_e: number, logs?: tf.Logs) => state.record(logs!.loss),
        onBatchEnd: undefined,
        onYield: () => undefined,
      };
      return state;
    };
    const reference = recorder();
    await compiled('sgd').fit(x, y, { ...options, callbacks: reference });
    expect(reference.losses).to.have.length(3);
    const logger = recordingLogger();
    const t = trainerFor('sgd', { logger });
    const ours = recorder();
    await t.fit(x, y, { ...options, callbacks: ours as never });
    expectHistoryClose({ loss: ours.losses }, { loss: reference.losses });
    expect(logger.lines.filter((l) => /onYield/.test(l))).to.deep.equal([
      "warn: fit.callbacks: 'onYield' ignored: tapfit's fit does not yield per batch as model.fit does (it lets the event loop turn once a second between steps on its own, and calls no hook there); run per-batch work in onBatchEnd, or drop the key.",
    ]);
    await t.fit(x, y, { ...options, callbacks: ours as never }); // the same object again (a loop of fits): no second line
    expect(logger.lines.filter((l) => /onYield/.test(l))).to.have.length(1);
    // A function under a near miss of a hook's name is a typo model.fit would silently never call: refused naming the hook.
    const steps = t.step;
    for (const [key, hook] of [['onEpochEnds', 'onEpochEnd'], ['onBatchend', 'onBatchEnd'], ['onbatchbegin', 'onBatchBegin'], ['onTrianBegin', 'onTrainBegin'], ['onYeild', 'onYield']]) {
      const err = await t.fit(x, y, { ...options, callbacks: [{ onTrainEnd: () => undefined }, { [key]: () => undefined }] as never }).catch((e: TapfitError) => e);
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal('TAPFIT_E_CONFIG');
      expect((err as TapfitError).message).to.contain(`fit.callbacks[1]: unknown callback '${key}' (did you mean '${hook}'?)`);
    }
    expect(t.step, 'a refused fit trains nothing').to.equal(steps);
    // A known hook that is not a function is refused as before.
    expect(((await t.fit(x, y, { ...options, callbacks: { onEpochEnd: 3 } as never }).catch((e: Error) => e)) as Error).message).to.match(/fit\.callbacks\.onEpochEnd must be a function, got 3/);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('tf.callbacks.earlyStopping stops the trainer where it stops model.fit', async () => {
    const { x, y, labels } = blobTensors(32);
    // The loss falls every epoch, so in 'max' mode it never improves: stop after patience + 1 epochs.
    const stopper = () => tf.callbacks.earlyStopping({ monitor: 'loss', mode: 'max', patience: 2 });
    const options = () => ({ epochs: 20, batchSize: 8, verbose: 0 as const, callbacks: stopper() });
    const reference = await compiled('adam').fit(x, y, options());
    const t = trainerFor('adam');
    const h = await t.fit(x, y, options());
    expect(reference.epoch).to.deep.equal([0, 1, 2]);
    expect(h.epoch).to.deep.equal(reference.epoch);
    expect(t.position).to.deep.equal({ epoch: 3, batch: 0 });
    // A later fit starts afresh and trains its 5 epochs, as a second model.fit does (stopTraining
    // cleared; numbered on, so each epoch gets its own shuffle).
    const again = await t.fit(x, y, { epochs: 5, batchSize: 8, verbose: 0 });
    expect(again.epoch).to.deep.equal([3, 4, 5, 6, 7]);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it("a tf.Callback may evaluate and predict with this.model, as it does under model.fit (the view runs the trainer's)", async () => {
    const { x, y, labels } = blobTensors(32);
    const seen: { evaluated: number; direct: number; predicted: number[] }[] = [];
    let trainer: Trainer | undefined;
    class Validate extends tf.Callback {
      override async onEpochEnd(): Promise<void> {
        const [loss] = this.model.evaluate(x, y, { batchSize: 8 }) as tf.Scalar[];
        const [direct] = trainer!.evaluate(x, y, { batchSize: 8 }) as tf.Scalar[];
        const p = this.model.predict(x) as tf.Tensor;
        seen.push({ evaluated: loss.dataSync()[0], direct: direct.dataSync()[0], predicted: p.shape });
        tf.dispose([loss, direct, p]);
      }
    }
    trainer = trainerFor('adam');
    await trainer.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, callbacks: new Validate() });
    expect(seen).to.have.length(2);
    for (const s of seen) expect(s).to.deep.equal({ evaluated: s.direct, direct: s.direct, predicted: [32, 3] });
    await compiled('adam').fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: new Validate() }); // the same callback under model.fit
    trainer.dispose();
    tf.dispose([x, y, labels]);
  });

  it('early stopping works on a segment model too (the callback gets a stand-in model)', async () => {
    const w = tf.variable(tf.randomNormal([4, 3], 0, 0.1, 'float32', 3), true, 'stop_w');
    const seg: Segment = { name: 'linear', params: [w], forward: ([x]) => [tf.matMul(x, w)] };
    const t = new Trainer({ model: segmentModel([seg], { inputShape: [4] }), loss: 'softmaxCrossEntropy', optimizer: 'adam', logger: new SilentLogger() });
    const { x, labels, y } = blobTensors(32);
    const h = await t.fit(x, labels, { epochs: 20, verbose: 0, callbacks: tf.callbacks.earlyStopping({ monitor: 'loss', mode: 'max', patience: 1 }) });
    expect(h.epoch).to.deep.equal([0, 1]);
    t.dispose();
    tf.dispose([w, x, y, labels]);
  });

  it('stopTraining set in onBatchEnd stops after that batch, leaving the epoch to continue later', async () => {
    const { x, y, labels } = blobTensors(32);
    class StopAtBatch extends tf.Callback {
      override async onBatchEnd(batch: number) {
        if (batch === 1) this.model.stopTraining = true;
      }
    }
    const t = trainerFor('sgd');
    const h = await t.fit(x, y, { epochs: 3, batchSize: 8, verbose: 0, callbacks: new StopAtBatch() });
    expect(h.epoch).to.deep.equal([]);
    expect({ epoch: t.position.epoch, batch: t.position.batch }).to.deep.equal({ epoch: 0, batch: 2 });
    // How the epoch was batched, and its sums so far, so that continuing it logs the whole epoch's means.
    expect(t.position.epochSoFar).to.include({ batchSize: 8, shuffle: true, samples: 16 });
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it("the user's own model.stopTraining = true, from a plain callback object closing over the model (tfjs's docs' way), stops the fit where it stops model.fit; the next fit clears it, as model.fit does", async () => {
    const { x, y, labels } = blobTensors(32);
    const options = { epochs: 5, batchSize: 8, shuffle: false, verbose: 0 as const };
    const stopAt = (where: 'onEpochEnd' | 'onBatchEnd', model: tf.LayersModel, steps: number[]) => ({
      onBatchEnd: async (b: number) => {
        steps.push(b);
        if (where === 'onBatchEnd' && b === 1) model.stopTraining = true;
      },
      ...(where === 'onEpochEnd' ? { onEpochEnd: async (e: number) => void (e === 1 && (model.stopTraining = true)) } : {}),
    });
    for (const where of ['onEpochEnd', 'onBatchEnd'] as const) {
      const reference = compiled('sgd');
      const referenceSteps: number[] = [];
      const expected = await reference.fit(x, y, { ...options, callbacks: stopAt(where, reference, referenceSteps) });
      const model = softmaxModel();
      const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', metrics: ['accuracy'], logger: new SilentLogger() });
      const steps: number[] = [];
      const h = await t.fit(x, y, { ...options, callbacks: stopAt(where, model, steps) });
      // The same steps, so the same weights; at an epoch's end the same epochs and history. (Stopped inside an
      // epoch, model.fit logs the part it ran as the epoch; the trainer leaves it unfinished for the next fit.)
      expect(steps, where).to.deep.equal(referenceSteps);
      expect(t.step, where).to.equal(referenceSteps.length);
      const weights = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));
      weights(model).forEach((w, i) => w.forEach((v, j) => expect(v, where).to.be.closeTo(weights(reference)[i][j], 1e-6)));
      if (where === 'onEpochEnd') {
        expect(h.epoch).to.deep.equal(expected.epoch);
        expectHistoryClose(h.history, expected.history as Record<string, number[]>);
      } else {
        expect(h.epoch).to.deep.equal([]);
        expect(t.position).to.deep.include({ epoch: 0, batch: 2 });
      }
      // Still set after the fit (as model.fit leaves it); the next fit clears it and trains on.
      expect(model.stopTraining).to.equal(true);
      const next = await t.fit(x, y, { ...options, epochs: 1 });
      expect(next.epoch).to.have.length(1);
      expect(model.stopTraining).to.equal(false);
      t.dispose();
    }
    tf.dispose([x, y, labels]);
  });

  it("a fit without callbacks never makes an unbuilt Sequential refuse its stopTraining flag (the check runs every step; a refusal builds an Error and its stack)", async () => {
    const { x, y, labels } = blobTensors(32);
    const model = softmaxModel();
    const read = Object.getOwnPropertyDescriptor(tf.Sequential.prototype, 'stopTraining')!.get!;
    let refusals = 0;
    Object.defineProperty(model, 'stopTraining', {
      configurable: true,
      get() {
        try {
          return read.call(this);
        } catch (err) {
          refusals++;
          throw err;
        }
      },
    });
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger() });
    const h = await t.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 });
    expect(h.epoch).to.deep.equal([0, 1]);
    expect(t.step).to.equal(8);
    expect(refusals).to.equal(0);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('verbose prints a line per epoch through the logger, like tfjs-node (default 1 for fit(x, y), 0 for fit(data))', async () => {
    const { x, y, labels } = blobTensors(16);
    const logger = recordingLogger();
    const t = trainerFor('sgd', { logger });
    await t.fit(x, y, { epochs: 2, batchSize: 8, validationSplit: 0.5 });
    expect(logger.lines[0]).to.equal('Epoch 1 / 2');
    expect(logger.lines[1]).to.match(/^\d+ms \d+us\/step - acc=[\d.]+ loss=[\d.]+ val_acc=[\d.]+ val_loss=[\d.]+$/);
    expect(logger.lines[2]).to.equal('Epoch 2 / 2');
    expect(logger.lines).to.have.length(4);
    await t.fit(tensorData(x, y), { epochs: 3 });
    expect(logger.lines).to.have.length(4);
    await t.fit(x, y, { epochs: 4, verbose: 0 });
    expect(logger.lines).to.have.length(4);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('initialEpoch starts there, as model.fit', async () => {
    const { x, y, labels } = blobTensors(16);
    const t = trainerFor('sgd');
    const h = await t.fit(x, y, { epochs: 5, initialEpoch: 3, verbose: 0 });
    expect(h.epoch).to.deep.equal([3, 4]);
    expect(h.params.initialEpoch).to.equal(3);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('a second fit trains again, as a second model.fit call does: a loop of 1-epoch fits equals one 3-epoch fit', async () => {
    const { x, y, labels } = blobTensors(48);
    const options = { batchSize: 16, shuffle: true, verbose: 0 as const };
    const once = trainerFor('sgd');
    await once.fit(x, y, { ...options, epochs: 3 });
    const looped = trainerFor('sgd');
    const epochs: number[][] = [];
    const losses: number[] = [];
    for (let i = 0; i < 3; i++) {
      const h = await looped.fit(x, y, { ...options, epochs: 1 });
      epochs.push(h.epoch);
      losses.push(h.history.loss[0]);
    }
    // Numbered on, so each call gets its own shuffle; the same three epochs as one fit.
    expect(epochs).to.deep.equal([[0], [1], [2]]);
    expect(losses[2]).to.be.lessThan(losses[0]);
    const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));
    expect(weights(looped)).to.deep.equal(weights(once));
    // A fit after a completed fit trains its own epoch count more, whatever the first one's (model.fit's count).
    const more = await once.fit(x, y, { ...options, epochs: 3 });
    expect(more.epoch).to.deep.equal([3, 4, 5]);
    const two = await once.fit(x, y, { ...options, epochs: 2 });
    expect(two.epoch).to.deep.equal([6, 7]);
    const four = await looped.fit(x, y, { ...options, epochs: 4 });
    expect(four.epoch).to.deep.equal([3, 4, 5, 6]);
    once.dispose();
    looped.dispose();
    tf.dispose([x, y, labels]);
  });

  it('a fit that throws after its last epoch ended counts as complete: the next fit trains its epochs (not nothing)', async () => {
    const { x, y, labels } = blobTensors(16);
    const t = trainerFor('sgd');
    await t.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    const failing = { onEpochEnd: async () => Promise.reject(new Error('disk full in a checkpoint callback')) };
    await t.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0, callbacks: failing }).then(
      () => expect.fail('expected the callback error'),
      (e: Error) => expect(e.message).to.equal('disk full in a checkpoint callback'),
    );
    expect(t.step).to.equal(4);
    const next = await t.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    expect(next.epoch).to.deep.equal([2]);
    expect(t.step).to.equal(6);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it("stop() in the last batch's onBatchEnd finishes that epoch (validation, logs, onEpochEnd); no empty epoch is left for later", async () => {
    const { x, y, labels } = blobTensors(32);
    const t = trainerFor('sgd');
    const ends: number[] = [];
    const h = await t.fit(x, y, { epochs: 3, batchSize: 8, verbose: 0, validationSplit: 0.25, callbacks: { onBatchEnd: async (b: number) => void (b === 2 && t.stop()), onEpochEnd: async (e: number) => void ends.push(e) } });
    expect(h.epoch).to.deep.equal([0]);
    expect(ends).to.deep.equal([0]);
    expect(Object.keys(h.history).sort()).to.deep.equal(['acc', 'loss', 'val_acc', 'val_loss']);
    expect(t.position).to.deep.equal({ epoch: 1, batch: 0 });
    const rest = await t.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, validationSplit: 0.25 });
    expect(rest.epoch).to.deep.equal([1, 2]);
    for (const v of Object.values(rest.history).flat()) expect(Number.isFinite(v)).to.equal(true);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('continuing a stopped epoch logs its means over all its batches, as straight through', async () => {
    const { x, y, labels } = blobTensors(32);
    const options = { epochs: 2, batchSize: 8, verbose: 0 as const, shuffle: true };
    const reference = trainerFor('sgd');
    const straight = await reference.fit(x, y, options);
    reference.dispose();
    const t = trainerFor('sgd');
    await t.fit(x, y, { ...options, callbacks: { onBatchEnd: async (b: number) => void (b === 1 && t.stop()) } });
    const rest = await t.fit(x, y, options);
    expect(rest.epoch).to.deep.equal([0, 1]);
    expect(rest.history).to.deep.equal(straight.history);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('continuing a stopped epoch with another batchSize or shuffle is refused, naming the settings that continue it', async () => {
    const { x, y, labels } = blobTensors(32);
    const t = trainerFor('sgd');
    await t.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, callbacks: { onBatchEnd: async (b: number) => void (b === 1 && t.stop()) } });
    for (const other of [{ batchSize: 4 }, { shuffle: false }]) {
      await t.fit(x, y, { epochs: 2, batchSize: 8, verbose: 0, ...other }).then(
        () => expect.fail(`continued with ${JSON.stringify(other)}`),
        (e: Error) => expect(e.message).to.match(/epoch 0 was stopped after 2 batch\(es\) run with batchSize 8, shuffle true.*Continue the epoch with batchSize 8, shuffle true .*or start the next one with initialEpoch: 1/),
      );
    }
    expect(t.step).to.equal(2);
    // The next epoch may start with any settings.
    const h = await t.fit(x, y, { epochs: 2, batchSize: 4, verbose: 0, initialEpoch: 1 });
    expect(h.epoch).to.deep.equal([1]);
    expect(t.step).to.equal(10);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('one target per sample for a one-unit model, as model.fit takes it: a binary classifier on a list of 0/1 labels, a regression on a list of values', async () => {
    const x = tf.tensor2d([[1, 0], [0, -1], [2, 1], [-1, -1], [0.5, 0.5], [-0.5, 1]]);
    const labels = [1, 0, 1, 0, 1, 0];
    const binary = () => tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2], activation: 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: 4 }) })] });
    const reference = binary();
    reference.compile({ optimizer: tf.train.sgd(0.1), loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    const expected = await reference.fit(x, tf.tensor1d(labels), { epochs: 3, batchSize: 2, shuffle: false, verbose: 0 });
    for (const y of [labels, tf.tensor1d(labels), tf.tensor1d(labels, 'int32')]) {
      const t = new Trainer({ model: binary(), loss: 'binaryCrossentropy', optimizer: tf.train.sgd(0.1), metrics: ['accuracy'], logger: new SilentLogger() });
      const h = await t.fit(x, y, { epochs: 3, batchSize: 2, shuffle: false, verbose: 0 });
      expectHistoryClose(h.history, expected.history as Record<string, number[]>);
      const [loss] = t.evaluate(x, y) as tf.Scalar[];
      expect(loss.dataSync()[0]).to.be.closeTo((reference.evaluate(x, tf.tensor2d(labels, [6, 1])) as tf.Scalar[])[0].dataSync()[0], 1e-5);
      t.dispose();
      if (y instanceof tf.Tensor) y.dispose();
    }
    const values = [0.5, -1.25, 2, 0.75, 1.5, -0.5];
    const t = new Trainer({ model: tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [2] })] }), loss: 'meanSquaredError', optimizer: 'sgd', logger: new SilentLogger() });
    const h = await t.fit(x, values, { epochs: 1, batchSize: 3, verbose: 0 });
    expect(Number.isFinite(h.history.loss[0])).to.equal(true);
    t.dispose();
    x.dispose();
  });

  it('one value per sample for a model of inputShape [1] ([N] x), as model.fit takes it: fit(x, y), arrayData, datasetData, evaluate and predict', async () => {
    const xs = [0, 1, 2, 3, -1, 0.5];
    const ys = [0.5, 2.5, 4.5, 6.5, -1.5, 1.5];
    const line = () => tf.sequential({ layers: [tf.layers.dense({ units: 1, inputShape: [1], kernelInitializer: tf.initializers.glorotUniform({ seed: 5 }) })] });
    const reference = line();
    reference.compile({ optimizer: tf.train.sgd(0.05), loss: 'meanSquaredError' });
    const options = { epochs: 3, batchSize: 2, shuffle: false, verbose: 0 as const };
    const [x1, y1] = [tf.tensor1d(xs), tf.tensor1d(ys)];
    const expected = await reference.fit(x1, y1, options); // model.fit makes x [N] two-dimensional
    const sources = {
      'fit(x, y) with arrays': (t: Trainer) => t.fit(xs, ys, options),
      'fit(x, y) with [N] tensors': (t: Trainer) => t.fit(x1, y1, options),
      'arrayData, flat x without xShape': async (t: Trainer) => {
        const data = arrayData({ x: xs, y: ys });
        try {
          return await t.fit(data, options);
        } finally {
          data.dispose();
        }
      },
      'datasetData of { xs: number }': (t: Trainer) => t.fit(datasetData(tf.data.array(xs.map((x, i) => ({ xs: x, ys: ys[i] })))), options),
    };
    for (const [name, fit] of Object.entries(sources)) {
      const t = new Trainer({ model: line(), loss: 'meanSquaredError', optimizer: tf.train.sgd(0.05), logger: new SilentLogger() });
      const h = await fit(t);
      expectHistoryClose(h.history, expected.history as Record<string, number[]>);
      if (name === 'fit(x, y) with [N] tensors') {
        const loss = t.evaluate(x1, y1) as tf.Scalar;
        expect(loss.dataSync()[0], name).to.be.closeTo((reference.evaluate(x1, y1) as tf.Scalar).dataSync()[0], 1e-5);
        const [mine, theirs] = [t.predict(x1), reference.predict(x1) as tf.Tensor];
        expect(mine.shape).to.deep.equal(theirs.shape);
        expect(Array.from(mine.dataSync())).to.deep.equal(Array.from(theirs.dataSync()));
        tf.dispose([loss, mine, theirs]);
      }
      t.dispose();
    }
    tf.dispose([x1, y1]);
    reference.dispose();
  });

  it("disposing the trainer leaves the caller's tf.train optimizer (model.optimizer) usable: model.fit goes on with it", async () => {
    const { x, y, labels } = blobTensors(16);
    const model = compiled('adam');
    await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: model.optimizer, logger: new SilentLogger() });
    await t.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    t.dispose();
    const h = await model.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 });
    expect(Number.isFinite(h.history.loss[0])).to.equal(true);
    model.optimizer.dispose();
    model.dispose();
    tf.dispose([x, y, labels]);
  });

  it('unknown options and misused forms are errors that say what to do', async () => {
    const { x, y, labels } = blobTensors(8);
    const t = trainerFor('sgd');
    const err = async (p: Promise<unknown>) => (await p.then(() => undefined, (e: Error) => e))!;
    expect((await err(t.fit(x, y, { validationSplt: 0.2 } as never))).message).to.match(/unknown option\(s\) 'validationSplt' \(did you mean 'validationSplit'\?\)/);
    // model.fit's options tapfit does not take are refused by name with what to do instead, not as unknown (nor as a near name).
    expect((await err(t.fit(x, y, { sampleWeight: x } as never))).message).to.match(/option 'sampleWeight' \(model.fit's\) is not supported by tapfit: weigh samples by their class with classWeight/);
    const stepsPerEpoch = (await err(t.fit(x, y, { stepsPerEpoch: 2 } as never))).message;
    expect(stepsPerEpoch).to.match(/option 'stepsPerEpoch' \(model.fit's\) is not supported by tapfit: an epoch is one pass over the data/);
    // The alternative named is the option fit takes (fitDataset's batchesPerEpoch), not ds.take(n), which restarts the dataset each epoch.
    expect(stepsPerEpoch).to.match(/model\.fitDataset's batchesPerEpoch with a data source, fit\(datasetData\(ds, \{ batched: true \}\), \{ batchesPerEpoch: n \}\)/);
    expect(stepsPerEpoch).not.to.match(/take\(/);
    // yieldEvery is model.fit's and changes nothing in the result: taken and ignored (test/fit/fit-dataset-method.test.ts).
    expect((await err(t.fit(x, y, { yieldEvery: 'nevr' } as never))).message).to.match(/yieldEvery.*must be 'auto', 'batch', 'epoch', 'never' or a number/);
    const steps = (await err(t.fit(x, y, { validationSteps: 2 } as never))) as TapfitError;
    expect(steps.code).to.equal('TAPFIT_E_CONFIG');
    expect(steps.message).to.match(/option 'validationSteps' \(model.fit's\) is not supported by tapfit: validation runs over the whole validation data/);
    expect(steps.message).to.match(/model\.fitDataset's validationBatches with a validation data source, \{ validationData: datasetData\(valDs, \{ batched: true \}\), validationBatches: n \}/);
    expect(steps.message).not.to.match(/did you mean|unknown/);
    // model.fitDataset's too: batchesPerEpoch is fit(data)'s (test/fit/fit-dataset.test.ts), validationBatchSize is refused.
    expect((await err(t.fit(x, y, { batchesPerEpoch: 3 }))).message).to.match(/option 'batchesPerEpoch' is model\.fitDataset's.*fit\(datasetData\(ds, \{ batched: true \}\), \{ batchesPerEpoch \}\)/);
    expect((await err(t.fit(x, y, { validationBatchSize: 3 } as never))).message).to.match(/option 'validationBatchSize' \(model.fitDataset's\) is not supported by tapfit: validation runs at fit's batchSize/);
    // A tf.data.Dataset where model.fitDataset / evaluateDataset took it: the error names datasetData.
    const ds = tf.data.zip({ xs: tf.data.array(tf.unstack(x)), ys: tf.data.array(tf.unstack(y)) }).batch(4);
    expect((await err(t.fit(ds as never, { epochs: 1 } as never))).message).to.match(/^fit: x is a tf\.data\.Dataset; wrap it in a data source: fit\(datasetData\(ds, \{ batched: true \}\), \{ epochs, \.\.\. \}\)/);
    expect((await err(t.fit(x, y, { validationData: ds as never, verbose: 0 }))).message).to.match(/^fit: validationData is a tf\.data\.Dataset; wrap it in a data source: validationData: datasetData\(valDs, \{ batched: true \}\)/);
    await t.setup();
    expect(() => t.evaluate(ds as never, undefined as never)).to.throw(/^evaluate: x is a tf\.data\.Dataset; wrap it in a data source: await trainer\.evaluate\(datasetData\(ds, \{ batched: true \}\)\)/);
    expect((await err(t.fit(x, y, { validationSplit: 1 }))).message).to.match(/validationSplit' must be in \(0, 1\)/);
    expect((await err(t.fit(x, undefined as never, { epochs: 1 }))).message).to.match(/fit: y must be a tensor or an array of numbers, got undefined.*fit\(x, y, \{ epochs/);
    expect((await err(t.fit(tensorData(x, y), y as never))).message).to.match(/with a data source the labels are inside it/);
    expect((await err(t.fit(x, y, { callbacks: { onEpochEnds: () => {} }, verbose: 0 } as never))).message).to.match(/unknown callback 'onEpochEnds' \(did you mean 'onEpochEnd'\?\)/);
    expect((await err(t.fit(x, y, { validationData: [x], verbose: 0 } as never))).message).to.match(/validationData must be \[x, y\]/);
    expect(t.step).to.equal(0);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('metrics, validation, callbacks and verbose read back once per epoch, not per step, and leak nothing', async () => {
    const { x, y, labels } = blobTensors(64);
    const t = trainerFor('adam', { nonFinite: 'off', logger: recordingLogger() });
    await t.setup();
    const before = tf.memory().numTensors;
    const run = (epochs: number) => () =>
      t.fit(x, y, { epochs, batchSize: 4, validationSplit: 0.25, callbacks: tf.callbacks.earlyStopping({ patience: 50 }) });
    const two = await countReads(run(2));
    const six = await countReads(run(6));
    // 12 steps an epoch; each epoch reads the train means once and the validation means once.
    expect(six - two).to.equal(4 * 2);
    expect(tf.memory().numTensors).to.equal(before);
    t.dispose();
    tf.dispose([x, y, labels]);
  });
});

describe('fit: failures leak nothing', () => {
  useBackend('cpu');

  for (const where of ['onBatchBegin', 'onBatchEnd', 'onEpochEnd'] as const) {
    it(`a callback throwing in ${where} fails the fit and leaks no tensor (metrics and validation on)`, async () => {
      const { x, y, labels } = blobTensors(32);
      const t = trainerFor('adam');
      await t.setup();
      const before = tf.memory().numTensors;
      const callbacks = { [where]: (n: number) => { if (n === 1) throw new Error(`boom in ${where}`); } };
      const err = await t.fit(x, y, { epochs: 3, batchSize: 8, validationSplit: 0.25, callbacks, verbose: 0 }).catch((e: Error) => e);
      expect((err as Error).message).to.equal(`boom in ${where}`);
      expect(tf.memory().numTensors).to.equal(before);
      t.dispose();
      tf.dispose([x, y, labels]);
    });
  }
});

describe('evaluate and predict as the model', () => {
  useBackend('cpu');

  it('evaluate(x, y) returns what model.evaluate returns: [loss, ...metrics] scalars (batch 32), or a scalar without metrics', async () => {
    const { x, y, labels } = blobTensors(70);
    const reference = compiled('sgd').evaluate(x, y) as tf.Scalar[];
    const t = trainerFor('sgd');
    await t.setup();
    const before = tf.memory().numTensors;
    const got = t.evaluate(x, y) as tf.Scalar[];
    expect(got).to.have.length(2);
    expect(tf.memory().numTensors - before).to.equal(2);
    got.forEach((s, i) => expect(s.dataSync()[0]).to.be.closeTo(reference[i].dataSync()[0], 1e-6));
    const record = await t.evaluate(tensorData(x, y));
    expect(record.loss).to.be.closeTo(got[0].dataSync()[0], 1e-6);
    expect(record.acc).to.be.closeTo(got[1].dataSync()[0], 1e-6);
    tf.dispose([...got, ...reference]);

    const plain = new Trainer({ model: softmaxModel(), loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger() });
    await plain.setup();
    const loss = plain.evaluate(x, y, { batchSize: 7 });
    expect(loss).to.be.instanceOf(tf.Tensor);
    expect((loss as tf.Scalar).rank).to.equal(0);
    expect((loss as tf.Scalar).dataSync()[0]).to.be.closeTo(record.loss, 1e-6);
    (loss as tf.Scalar).dispose();
    t.dispose();
    plain.dispose();
    tf.dispose([x, y, labels]);
  });

  it('predict(x) equals model.predict, in batches of 32 by default, for tensors and arrays', async () => {
    const { x, y, labels } = blobTensors(70);
    const model = softmaxModel();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger() });
    await t.setup();
    const expected = model.predict(x) as tf.Tensor;
    const before = tf.memory().numTensors;
    const got = t.predict(x);
    const fromArray = t.predict(x.arraySync(), { batchSize: 16 });
    expect(tf.memory().numTensors - before).to.equal(2);
    expect(got.shape).to.deep.equal([70, 3]);
    const e = expected.dataSync();
    got.dataSync().forEach((v, i) => expect(v).to.be.closeTo(e[i], 1e-6));
    fromArray.dataSync().forEach((v, i) => expect(v).to.be.closeTo(e[i], 1e-6));
    tf.dispose([got, fromArray, expected, x, y, labels]);
    t.dispose();
  });

  it("predict frees each batch's activations before the next batch (as model.predict): its peak memory does not grow with the number of batches", async () => {
    const wide = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 256, activation: 'relu' }), tf.layers.dense({ units: 256, activation: 'relu' }), tf.layers.dense({ units: 3 })] });
    const t = new Trainer({ model: wide, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger() });
    await t.setup();
    const peak = async (batches: number) => {
      const x = tf.ones([8 * batches, 4]);
      const info = await tf.profile(() => t.predict(x, { batchSize: 8 }).dispose());
      const p = info.peakBytes; // read before the next profile: tf.profile hands back one shared record
      x.dispose();
      return p;
    };
    const one = await peak(1);
    const many = await peak(16);
    // 16 batches hold 16 outputs (8 x 3 floats each) and the inputs besides one batch's activations (2 x 8 x 256 floats).
    expect(many - one, `peak bytes: 1 batch ${one}, 16 batches ${many}`).to.be.below(16 * 8 * 3 * 4 * 2 + 16 * 8 * 4 * 4 + 2 * 8 * 256 * 4);
    t.dispose();
  });
});
