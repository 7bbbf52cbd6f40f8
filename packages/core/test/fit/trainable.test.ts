// layer.trainable set between fits (the fine-tuning recipe: freeze the base, fit, unfreeze,
// fit): the next fit trains the new set, as model.fit does after model.compile() again, or
// refuses it with an error naming the fix where the trainer cannot follow it. A custom loop
// of trainStep calls, and a fit where a callback sets it, follow it the same way at the
// next step.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { segmentModel, SilentLogger, TapfitError, Trainer, type StepTransform, type TrainerOptions } from '../../src';
import { toTrainableModel, trainableVariables } from '../../src/model/trainable-model';
import { TrainableFlags } from '../../src/train/trainable-flags';
import { trainableSetChange } from '../../src/train/trainable-set';
import { rejected, tmpDir, useBackend } from '../fixtures';
import { blobTensors, expectHistoryClose, recordingLogger, softmaxModel } from './helpers';

const weightsOf = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

function expectWeightsEqual(actual: tf.LayersModel, expected: tf.LayersModel): void {
  const e = weightsOf(expected);
  weightsOf(actual).forEach((w, i) => w.forEach((v, j) => expect(v, `weight ${i}[${j}]`).to.be.closeTo(e[i][j], 1e-6)));
}

/** Every tensor in a chain state. */
function stateTensors(state: unknown): tf.Tensor[] {
  if (state instanceof tf.Tensor) return [state];
  return typeof state === 'object' && state !== null ? Object.values(state).flatMap(stateTensors) : [];
}

describe('layer.trainable set between fits', () => {
  useBackend('cpu');
  const options = { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 as const };

  for (const [label, first, second] of [
    ['unfreezing the base (fine-tuning: freeze, fit, unfreeze, fit)', false, true],
    ['freezing the base after a fit', true, false],
  ] as const) {
    it(`${label} trains as model.fit with model.compile() again: the same history and weights, and says so`, async () => {
      const { x, y, labels } = blobTensors(32);
      const reference = softmaxModel();
      const model = softmaxModel();
      const logger = recordingLogger();
      const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', metrics: ['accuracy'], logger });
      const compile = () => reference.compile({ loss: 'categoricalCrossentropy', optimizer: 'sgd', metrics: ['accuracy'] });
      for (const m of [reference, model]) m.layers[0].trainable = first;
      compile();
      expectHistoryClose((await t.fit(x, y, options)).history, (await reference.fit(x, y, options)).history as Record<string, number[]>);
      for (const m of [reference, model]) m.layers[0].trainable = second;
      compile();
      const base = model.layers[0].getWeights().map((w) => Array.from(w.dataSync()));
      const expected = await reference.fit(x, y, options);
      const h = await t.fit(x, y, options);
      expectHistoryClose(h.history, expected.history as Record<string, number[]>);
      expectWeightsEqual(model, reference);
      if (!second) expect(model.layers[0].getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(base); // frozen: not moved
      expect(Object.keys(t.variables)).to.have.length(second ? 4 : 2);
      expect(logger.lines.join('\n')).to.match(new RegExp(`trainable variables changed since the last fit \\(${second ? 'now trainable' : 'no longer trainable'}: dense_Dense\\d+/kernel, dense_Dense\\d+/bias\\)`));
      t.dispose();
      tf.dispose([x, y, labels]);
    });
  }

  it("a stateful chain ('adam'): variables still trained keep their state, newly trainable ones start from init, frozen ones drop theirs; nothing leaks", async () => {
    const { x, y, labels } = blobTensors(32);
    const model = softmaxModel();
    model.layers[0].trainable = false;
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'adam', logger: new SilentLogger() });
    await t.fit(x, y, options);
    const [baseKernel, baseBias, headKernel, headBias] = model.layers.flatMap((l) => l.weights.map((w) => (w.read() as tf.Variable).name));
    type AdamState = { count: number; mu: Record<string, tf.Tensor>; nu: Record<string, tf.Tensor> };
    const adam = () => t.optimizerState!.adam as unknown as AdamState;
    const before = { count: adam().count, mu: adam().mu[headKernel].arraySync(), nu: adam().nu[headBias].arraySync() };
    expect(Object.keys(adam().mu)).to.deep.equal([headKernel, headBias]);
    const tensorsBefore = tf.memory().numTensors;
    const stateBefore = stateTensors(t.optimizerState).length;

    model.layers[0].trainable = true;
    let seen: { keys: string[]; count: number; mu: unknown; nu: unknown; zeros: boolean; tensors: number } | undefined;
    const look = {
      onTrainBegin: () => {
        const s = adam();
        const zeros = [s.mu[baseKernel], s.mu[baseBias], s.nu[baseKernel], s.nu[baseBias]].every((b) => b.dataSync().every((v) => v === 0));
        seen = { keys: Object.keys(s.mu), count: s.count, mu: s.mu[headKernel].arraySync(), nu: s.nu[headBias].arraySync(), zeros, tensors: tf.memory().numTensors };
      },
    };
    await t.fit(x, y, { ...options, epochs: 1, callbacks: look });
    expect(seen!.keys).to.deep.equal([baseKernel, baseBias, headKernel, headBias]);
    expect({ count: seen!.count, mu: seen!.mu, nu: seen!.nu }).to.deep.equal(before);
    expect(seen!.zeros).to.equal(true);
    // Two buffers (mu, nu) for each of the two new variables, and nothing else.
    expect(seen!.tensors - tensorsBefore).to.equal(stateTensors(t.optimizerState).length - stateBefore);
    expect(stateTensors(t.optimizerState).length - stateBefore).to.equal(4);

    model.layers[0].trainable = false;
    const beforeFreeze = tf.memory().numTensors;
    const kernel = Array.from(model.layers[0].getWeights()[0].dataSync());
    await t.fit(x, y, { ...options, epochs: 1 });
    expect(Object.keys(adam().mu)).to.deep.equal([headKernel, headBias]);
    expect(Array.from(model.layers[0].getWeights()[0].dataSync())).to.deep.equal(kernel);
    expect(tf.memory().numTensors).to.equal(beforeFreeze - 4);
    t.dispose();
    tf.dispose([x, y, labels]);
  });

  it('after the change, a checkpoint resumes bit for bit with the model as it is now; resuming with another trainable set names the difference', async () => {
    const { x, y, labels } = blobTensors(32);
    const trainerOptions = (model: tf.LayersModel): TrainerOptions => ({ model, loss: 'categoricalCrossentropy', optimizer: 'adam', logger: new SilentLogger(), seed: 3 });
    const model = softmaxModel();
    model.layers[0].trainable = false;
    const straight = new Trainer(trainerOptions(model));
    await straight.fit(x, y, { ...options, epochs: 1 });
    model.layers[0].trainable = true;
    await straight.fit(x, y, { ...options, epochs: 1 });
    const dir = tmpDir();
    await straight.save(dir);
    await straight.fit(x, y, { ...options, epochs: 1 });

    const again = softmaxModel(); // its weights come from the checkpoint
    const resumed = await Trainer.resume(dir, trainerOptions(again));
    await resumed.fit(x, y, { ...options, epochs: 3 }); // the first fit after resume: epochs is the final epoch
    expect(weightsOf(again)).to.deep.equal(weightsOf(model));

    const frozen = softmaxModel();
    frozen.layers[0].trainable = false;
    const err = await rejected(Trainer.resume(dir, trainerOptions(frozen)));
    expect(err.code).to.equal('TAPFIT_E_CHECKPOINT');
    expect(err.message).to.match(/trainable variables differ from when it was saved \(trained when saved, not trainable now: dense_Dense\d+\/kernel, dense_Dense\d+\/bias\): resume with layer.trainable as it was then/);
    straight.dispose();
    resumed.dispose();
    tf.dispose([x, y, labels]);
  });

  describe('a custom loop of trainStep calls', () => {
    /** model.fit's batches for batchSize 8 without shuffling, one trainStep each. */
    function trainSteps(t: Trainer, x: tf.Tensor, y: tf.Tensor): void {
      for (let start = 0; start < x.shape[0]; start += 8) {
        const size = Math.min(8, x.shape[0] - start);
        const batch = { x: tf.slice(x, start, size), y: tf.slice(y, start, size) };
        const { loss } = t.trainStep(batch, { epoch: 0, batch: start / 8, step: t.step });
        tf.dispose([loss, batch.x, batch.y]);
      }
    }

    for (const [label, first, second] of [
      ['unfreezing the base', false, true],
      ['freezing the base', true, false],
    ] as const) {
      it(`${label} between steps trains the new set from the next step, as model.fit with model.compile() again, and says so`, async () => {
        const { x, y, labels } = blobTensors(32);
        const reference = softmaxModel();
        const model = softmaxModel();
        const logger = recordingLogger();
        const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger });
        const compile = () => reference.compile({ loss: 'categoricalCrossentropy', optimizer: 'sgd' });
        const once = { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 as const };
        for (const m of [reference, model]) m.layers[0].trainable = first;
        compile();
        await t.setup();
        await reference.fit(x, y, once);
        trainSteps(t, x, y);
        expectWeightsEqual(model, reference);
        for (const m of [reference, model]) m.layers[0].trainable = second;
        compile();
        const base = model.layers[0].getWeights().map((w) => Array.from(w.dataSync()));
        await reference.fit(x, y, once);
        trainSteps(t, x, y);
        expectWeightsEqual(model, reference);
        if (!second) expect(model.layers[0].getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(base); // frozen: not moved
        expect(Object.keys(t.variables)).to.have.length(second ? 4 : 2);
        expect(t.step).to.equal(8);
        const said = logger.lines.filter((l) => l.includes('trainable variables changed'));
        expect(said).to.have.length(1); // once, at the first step after the change
        expect(said[0]).to.match(new RegExp(`^trainStep: the model's trainable variables changed since the last step \\(${second ? 'now trainable' : 'no longer trainable'}: dense_Dense\\d+/kernel, dense_Dense\\d+/bias\\)`));
        t.dispose();
        tf.dispose([x, y, labels]);
      });
    }

    it('a segment model: a variable whose trainable flag is cleared is left alone from the next step', async () => {
      const w = tf.variable(tf.tensor2d([[0.5, -0.2], [0.1, 0.3]]), true, 'steploop_w');
      const b = tf.variable(tf.tensor1d([0.1, -0.1]), true, 'steploop_b');
      const model = segmentModel([{ name: 'affine', params: [w, b], forward: ([x]) => [tf.add(tf.matMul(x!, w), b)] }], { inputShape: [2], outputShape: [2] });
      const t = new Trainer({ model, loss: 'meanSquaredError', optimizer: 'sgd', logger: new SilentLogger() });
      await t.setup();
      const batch = () => ({ x: tf.tensor2d([[1, 2], [3, 4]]), y: tf.tensor2d([[1, 0], [0, 1]]) });
      t.trainStep(batch(), { epoch: 0, batch: 0, step: 0 }).loss.dispose();
      w.trainable = false;
      const kernel = Array.from(w.dataSync());
      const bias = Array.from(b.dataSync());
      t.trainStep(batch(), { epoch: 0, batch: 1, step: 1 }).loss.dispose();
      expect(Array.from(w.dataSync())).to.deep.equal(kernel);
      expect(Array.from(b.dataSync())).to.not.deep.equal(bias);
      expect(Object.keys(t.variables)).to.deep.equal(['steploop_b']);
      t.dispose();
      tf.dispose([w, b]);
    });

    it("refused where fit refuses (with plugins), before the step: the caller's batch is left alone and nothing leaks, the trainer is as it was and trains on once the set is back", async () => {
      const { x, y, labels } = blobTensors(32);
      const model = softmaxModel();
      model.layers[0].trainable = false;
      const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger(), plugins: [{ name: 'noop', core: '*', apply: () => {} }] });
      await t.setup();
      trainSteps(t, x, y);
      const variables = { ...t.variables };
      const layerWeights = () => model.layers.map((l) => l.getWeights().map((w) => Array.from(w.dataSync()))); // getWeights() orders by trainable
      const weights = layerWeights();
      model.layers[0].trainable = true;
      const batch = { x: tf.slice(x, 0, 8), y: tf.slice(y, 0, 8) };
      const tensors = tf.memory().numTensors;
      let err: unknown;
      try {
        t.trainStep(batch, { epoch: 1, batch: 0, step: t.step });
      } catch (e) {
        err = e;
      }
      expect(batch.x.isDisposed || batch.y.isDisposed, "the caller's tensors").to.equal(false);
      tf.dispose([batch.x, batch.y]);
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal('TAPFIT_E_STATE');
      expect((err as Error).message).to.match(/^trainStep: the model's trainable variables changed since the trainer was set up \(layer.trainable was set; now trainable: dense_Dense\d+\/kernel, dense_Dense\d+\/bias\), and the trainer does not follow that with plugins \(noop\)/);
      expect((err as Error).message).to.match(/Build a new Trainer\(\{ model, \.\.\. \}\) after changing trainable/);
      expect(tf.memory().numTensors).to.equal(tensors - 2);
      expect(t.variables).to.deep.equal(variables);
      expect(layerWeights()).to.deep.equal(weights);
      expect(t.step).to.equal(4);
      model.layers[0].trainable = false;
      trainSteps(t, x, y);
      expect(t.step).to.equal(8);
      t.dispose();
      tf.dispose([x, y, labels]);
    });
  });

  describe('set by a callback during a fit', () => {
    for (const [label, first, second] of [
      ['frozen', true, false],
      ['unfrozen', false, true],
    ] as const) {
      it(`the base ${label} after batch 1 trains the new set from batch 2: the weights of model.fit on batches 0-1, then model.compile() and model.fit on batches 2-3`, async () => {
        const { x, y, labels } = blobTensors(32);
        const reference = softmaxModel();
        const model = softmaxModel();
        const logger = recordingLogger();
        const once = { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 as const };
        const compile = () => reference.compile({ loss: 'categoricalCrossentropy', optimizer: 'sgd' });
        for (const m of [reference, model]) m.layers[0].trainable = first;
        compile();
        const [x1, x2, y1, y2] = [tf.slice(x, 0, 16), tf.slice(x, 16, 16), tf.slice(y, 0, 16), tf.slice(y, 16, 16)];
        await reference.fit(x1, y1, once);
        reference.layers[0].trainable = second;
        compile();
        await reference.fit(x2, y2, once);
        const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger });
        const toggle = { onBatchEnd: async (batch: number) => void (batch === 1 && (model.layers[0].trainable = second)) };
        await t.fit(x, y, { ...once, callbacks: toggle });
        expectWeightsEqual(model, reference);
        expect(t.step).to.equal(4);
        expect(logger.lines.join('\n')).to.match(/fit: the model's trainable variables changed since the last step \((now|no longer) trainable: dense_Dense\d+\/kernel, dense_Dense\d+\/bias\)/);
        t.dispose();
        tf.dispose([x, y, labels, x1, x2, y1, y2]);
      });
    }

    it('where fit refuses (with plugins) the fit fails at the next step naming the fix, with the batch freed', async () => {
      const { x, y, labels } = blobTensors(32);
      const model = softmaxModel();
      model.layers[0].trainable = false;
      const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger(), plugins: [{ name: 'noop', core: '*', apply: () => {} }] });
      await t.fit(x, y, { epochs: 1, batchSize: 8, shuffle: false, verbose: 0 }); // set up, its state made
      const tensors = tf.memory().numTensors;
      const toggle = { onBatchEnd: async (batch: number) => void (batch === 1 && (model.layers[0].trainable = true)) };
      const err = await rejected(t.fit(x, y, { epochs: 2, batchSize: 8, shuffle: false, verbose: 0, callbacks: toggle }));
      expect(err.code).to.equal('TAPFIT_E_STATE');
      expect(err.message).to.match(/^fit: the model's trainable variables changed since the trainer was set up \(layer.trainable was set; now trainable: dense_Dense\d+\/kernel, dense_Dense\d+\/bias\), and the trainer does not follow that with plugins \(noop\).*Build a new Trainer/);
      expect(t.step).to.equal(6);
      expect(tf.memory().numTensors).to.equal(tensors);
      t.dispose();
      tf.dispose([x, y, labels]);
    });
  });

  it("trainStep's per-step check (the flags) sees every change of the set: nested models, an RNN (its cell's weights), single weights", () => {
    const inner = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 4 }), tf.layers.dense({ units: 4 })] });
    const recurrent = tf.layers.simpleRNN({ units: 4, inputShape: [3, 2] }) as tf.layers.Layer & { cell: tf.layers.Layer };
    const model = tf.sequential({ layers: [recurrent, inner, tf.layers.dense({ units: 2 })] });
    const trainable = toTrainableModel(model);
    const params = Object.fromEntries(trainableVariables(trainable).map((v) => [v.name, v]));
    const toggles: [string, () => void][] = [
      ['the model', () => (model.trainable = !model.trainable)],
      ['a nested model', () => (inner.trainable = !inner.trainable)],
      ["a nested model's layer", () => (inner.layers[1].trainable = !inner.layers[1].trainable)],
      ['an RNN', () => (recurrent.trainable = !recurrent.trainable)],
      ["an RNN's cell", () => (recurrent.cell.trainable = !recurrent.cell.trainable)],
      ['one weight', () => (model.layers[2].weights[1].trainable = !model.layers[2].weights[1].trainable)],
    ];
    for (const [what, toggle] of toggles) {
      const flags = new TrainableFlags(trainable);
      toggle();
      const change = trainableSetChange(params, trainableVariables(trainable));
      expect(change, what).to.not.equal(undefined); // each toggle alone changes the set (the oracle)
      expect(flags.changed(), what).to.equal(true);
      toggle();
      expect(trainableSetChange(params, trainableVariables(trainable)), what).to.equal(undefined);
      expect(flags.changed(), `${what}, back`).to.equal(false);
    }
    model.dispose();
  });

  describe('refused where the trainer cannot follow the change, leaving it as it was', () => {
    /** A chain member whose state is one tensor for all variables together (not one entry per variable). */
    const flatState: StepTransform = {
      name: 'flat',
      init: (params) => ({ seen: tf.zeros([Object.values(params).reduce((n, p) => n + p.size, 0)]) }),
      update: (updates, state) => [Object.fromEntries(Object.entries(updates).map(([k, u]) => [k, tf.mul(u, -0.1)])), state],
    };
    const noop = { name: 'noop', core: '*', apply: () => {} };
    const budget = (x: tf.Tensor) => ({ budgetBytes: 2 ** 26, sample: { x: x.slice(0, 8) } });
    for (const [label, extraFor, reason] of [
      ['with plugins', () => ({ plugins: [noop] }), /the trainer does not follow that with plugins \(noop\): their state may be kept per variable \(a plugin that freezes layers leaves layer.trainable alone and drops the layers' gradients in a backward tap instead\)/],
      // The option is not a registered plugin: the plan measured for the old set is the reason, and no plugin is named.
      ['with the memoryBudget option', (x: tf.Tensor) => ({ memoryBudget: budget(x) }), /, and the memoryBudget option's memory plan was measured for the old trainable set .*a new Trainer with memoryBudget measures the new set\. Build/],
      ['with the memoryBudget option and plugins', (x: tf.Tensor) => ({ memoryBudget: budget(x), plugins: [noop] }), /with plugins \(noop\): their state may be kept per variable \(.*\); and the memoryBudget option's memory plan was measured for the old trainable set/],
      // `memoryBudget: false` (a JS `cond && {...}`) adds no budget: only the plugin is named.
      ['with plugins and memoryBudget: false', () => ({ plugins: [noop], memoryBudget: false }), /^(?![\s\S]*memoryBudget)[\s\S]*, and the trainer does not follow that with plugins \(noop\): their state may be kept per variable \(.*\)\. Build/],
      ['with a black-box tf.train optimizer', () => ({ optimizer: tf.train.adam(0.01) }), /a black-box tf.train optimizer keeps its state by position in the variable list/],
      ['with a chain member whose state is not one entry per variable', () => ({ optimizer: flatState }), /the update chain's state at 'flat.seen' is a tensor whose shape follows the trainable set \(\[27\] before, \[67\] now\)/],
    ] as const) {
      it(label, async () => {
        const { x, y, labels } = blobTensors(32);
        const model = softmaxModel();
        model.layers[0].trainable = false;
        const extra = extraFor(x);
        const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: 'sgd', logger: new SilentLogger(), ...extra } as TrainerOptions);
        await t.fit(x, y, options);
        const variables = { ...t.variables };
        const state = stateTensors(t.optimizerState);
        const tensors = tf.memory().numTensors;
        model.layers[0].trainable = true;
        const err = await rejected(t.fit(x, y, options));
        expect(err).to.be.instanceOf(TapfitError);
        expect(err.code).to.equal('TAPFIT_E_STATE');
        expect(err.message).to.match(/fit: the model's trainable variables changed since the trainer was set up \(layer.trainable was set; now trainable: dense_Dense\d+\/kernel, dense_Dense\d+\/bias\)/);
        expect(err.message).to.match(reason);
        expect(err.message).to.match(/Build a new Trainer\(\{ model, \.\.\. \}\) after changing trainable/);
        expect(t.variables).to.deep.equal(variables);
        expect(stateTensors(t.optimizerState)).to.deep.equal(state);
        expect(state.every((s) => !s.isDisposed)).to.equal(true);
        expect(tf.memory().numTensors).to.equal(tensors);
        expect(t.step).to.equal(8);
        // Back as it was set up, the trainer trains on.
        model.layers[0].trainable = false;
        await t.fit(x, y, { ...options, epochs: 1 });
        expect(t.step).to.equal(12);
        t.dispose();
        const given = (extra as { optimizer?: unknown }).optimizer;
        if (given !== undefined && given instanceof tf.Optimizer) given.dispose();
        const budgetGiven = (extra as { memoryBudget?: false | { sample: { x: tf.Tensor } } }).memoryBudget;
        if (budgetGiven) budgetGiven.sample.x.dispose();
        tf.dispose([x, y, labels]);
      });
    }
  });
});
