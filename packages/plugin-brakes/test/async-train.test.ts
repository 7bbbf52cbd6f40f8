import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { noiseKey, noiseSeed, sgd, SilentLogger, tensorData, Trainer } from '@tapfit/core';
import { asyncTrain, AsyncTrainError, type AsyncTrainOptions, type AsyncTrainStats } from '../src';
import { GradientLedger } from '../src/async/ledger';
import type { WorkerInit } from '../src/async/protocol';
import { shardOf, shareData } from '../src/async/shared-data';
import { shardBatches } from '../src/async/worker-batches';
import { BrakesTestDoubler } from './fixtures/custom-layer';
import { useBackend } from './helpers';

const faulty = path.join(__dirname, 'fixtures', 'faulty-worker.js');
const customLayer = path.join(__dirname, 'fixtures', 'custom-layer.js');
const customLayerTla = path.join(__dirname, 'fixtures', 'custom-layer-tla.mjs');

/** A linear model y = x w (no bias) with weights `w0`, and `n` samples of ones. */
function linear(inputs: number, w0: number, n = 96) {
  const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [inputs], units: 1, useBias: false, kernelInitializer: tf.initializers.constant({ value: w0 }) })] });
  const data = tensorData(tf.ones([n, inputs]), tf.zeros([n, 1]));
  return { model, data, kernel: () => Array.from(model.trainableWeights[0].read().dataSync()) };
}

async function withFault<T>(fault: string, fn: () => Promise<T>): Promise<T> {
  process.env.BRAKES_TEST_FAULT = fault;
  try {
    return await fn();
  } finally {
    delete process.env.BRAKES_TEST_FAULT;
  }
}

const base = (m: ReturnType<typeof linear>): AsyncTrainOptions => ({
  model: m.model,
  data: m.data,
  loss: 'meanSquaredError',
  optimizer: sgd({ lr: 0.5 }),
  workers: 3,
  steps: 60,
  batchSize: 4,
  backend: 'cpu',
  setupModule: faulty,
  timeoutMs: 20_000,
  logger: new SilentLogger(),
});

function expectAccounted(stats: AsyncTrainStats): void {
  expect(stats.workers.reduce((s, w) => s + w.applied, 0)).to.equal(stats.steps);
  expect(stats.staleness.histogram.reduce((a, b) => a + b, 0)).to.equal(stats.steps);
  expect(stats.losses).to.have.length(stats.steps);
  expect(stats.samples).to.equal(stats.steps * 4);
}

describe('asyncTrain (worker threads)', function () {
  this.timeout(60_000);
  useBackend('cpu');

  it('applies every gradient exactly once: constant gradients sum to lr * steps exactly', async () => {
    const m = linear(4, 0);
    const before = tf.memory().numTensors;
    const stats = await asyncTrain(base(m));
    expect(stats.complete).to.equal(true);
    expect(stats.steps).to.equal(60);
    expect(m.kernel()).to.deep.equal([30, 30, 30, 30]); // 0.5 * 60, no more, no less
    expectAccounted(stats);
    expect(stats.workers.every((w) => w.failure === undefined)).to.equal(true);
    // Which workers got updates in depends on scheduling (a worker that starts late on a busy machine may get none).
    expect(stats.workers.filter((w) => w.applied > 0).length).to.be.at.least(2);
    expect(stats.staleness.max).to.be.at.least(1); // three workers really overlapped
    expect(stats.rejected).to.equal(0);
    expect(stats.samplesPerSecond).to.be.greaterThan(0);
    expect(stats.meanComputeMs).to.be.greaterThan(0);
    expect(stats.meanApplyMs).to.be.greaterThan(0);
    expect(tf.memory().numTensors).to.equal(before);
    m.model.dispose();
    m.data.dispose();
  });

  it('an onUpdate that throws stops the run with an AsyncTrainError whose stats say how far it got, leaking nothing', async () => {
    const m = linear(4, 0);
    const before = tf.memory().numTensors;
    const err = await asyncTrain({ ...base(m), steps: 8, onUpdate: ({ step }) => {
      if (step === 3) throw new Error('progress bar broke');
    } }).then(
      () => expect.fail('the run ignored the callback error'),
      (e: unknown) => e as AsyncTrainError,
    );
    expect(err).to.be.instanceOf(AsyncTrainError);
    expect(err.message).to.match(/asyncTrain: onUpdate threw at update 3: progress bar broke/);
    expect(err.stats.steps).to.equal(3);
    expect(err.stats.complete).to.equal(false);
    expect(m.kernel()).to.deep.equal([1.5, 1.5, 1.5, 1.5]); // 0.5 * 3 updates
    expect(tf.memory().numTensors).to.equal(before);
    m.model.dispose();
    m.data.dispose();
  });

  it('one run trains a model at a time: a second asyncTrain, or one beside a Trainer fit or model.fit, is refused (TAPFIT_E_STATE); the model is free again once a run settles', async () => {
    const m = linear(4, 0);
    m.model.compile({ optimizer: 'sgd', loss: 'meanSquaredError' }); // before the run: a Sequential's compile() builds a new inner model
    const refused = (p: Promise<unknown>) =>
      p.then(
        () => expect.fail('a second run on the model was accepted'),
        (e: Error & { code?: string }) => e,
      );
    const first = asyncTrain({ ...base(m), steps: 8 });
    const second = await refused(asyncTrain({ ...base(m), steps: 8 }));
    expect(second.code).to.equal('TAPFIT_E_STATE');
    expect(second.message).to.match(/asyncTrain: the model is being trained already \(by another asyncTrain, model.fit or a Trainer on the same model\).*Await that run first/);
    const trainer = new Trainer({ model: m.model, loss: 'meanSquaredError', optimizer: sgd({ lr: 0.5 }), logger: new SilentLogger() });
    expect((await refused(trainer.fit(m.data, { epochs: 1, batchSize: 4 }))).message).to.match(/the model is being trained by another fit/);
    expect((await refused(m.model.fit(m.data.x, m.data.y, { epochs: 1, verbose: 0 }))).message).to.match(/another fit\(\) call is ongoing/);
    expect((await first).steps).to.equal(8);
    expect(m.kernel()).to.deep.equal([4, 4, 4, 4]); // 0.5 * 8: only the first run's updates

    // The other way round: asyncTrain refuses a model a Trainer trains.
    let during: Error | undefined;
    await trainer.fit(m.data, { epochs: 1, batchSize: 48, callbacks: [{ onBatchEnd: async () => void (during ??= await refused(asyncTrain({ ...base(m), steps: 8 }))) }] });
    expect(during?.message).to.match(/asyncTrain: the model is being trained already/);
    trainer.dispose();

    // Free again after a run that failed, too.
    await asyncTrain({ ...base(m), steps: 4, onUpdate: () => { throw new Error('stop'); } }).catch(() => undefined);
    expect((await asyncTrain({ ...base(m), steps: 4 })).steps).to.equal(4);
    m.model.dispose();
    m.data.dispose();
  });

  it('a model disposed during the run (here in onUpdate) stops it with an error naming asyncTrain, not a bare TypeError', async () => {
    const m = linear(4, 0);
    const err = await asyncTrain({ ...base(m), steps: 8, onUpdate: ({ step }) => void (step === 3 && m.model.dispose()) }).then(
      () => expect.fail('the run went on with a disposed model'),
      (e: unknown) => e as AsyncTrainError,
    );
    expect(err).to.be.instanceOf(AsyncTrainError);
    expect(err.code).to.equal('TAPFIT_E_STATE');
    expect(err.message).to.match(/asyncTrain: the model was disposed while asyncTrain was training it \(after update 3\).*Dispose the model only after asyncTrain's promise settles/);
    expect(err.stats.steps).to.equal(3);
    m.data.dispose();
  });

  it("a model with a custom layer registered only on the calling thread: the run fails naming the class and saying to register it in setupModule, once for all workers; registered there, it trains", async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3 }), new BrakesTestDoubler({ name: 'double' }), tf.layers.dense({ units: 1 })] });
    const data = tensorData(tf.ones([16, 4]), tf.zeros([16, 1]));
    const warnings: string[] = [];
    const logger = { info: () => {}, warn: (w: string) => void warnings.push(w) };
    const options: AsyncTrainOptions = { model, data, loss: 'meanSquaredError', optimizer: sgd({ lr: 0.01 }), workers: 3, steps: 4, batchSize: 4, backend: 'cpu', logger };
    const err = await asyncTrain(options).then(
      () => expect.fail('the workers rebuilt a class they never registered'),
      (e: unknown) => e as AsyncTrainError,
    );
    expect(err.code).to.equal('TAPFIT_E_ASYNC_WORKERS');
    const fix =
      "cannot rebuild the model's layer class 'BrakesTestDoubler' from its JSON: each asyncTrain worker builds the model with its own TF.js, which knows the built-in classes only, " +
      'not those registered on the calling thread. Register it in a module passed as setupModule (at its top level or in its setup(): tf.serialization.registerClass(BrakesTestDoubler))';
    expect(err.message).to.match(/^asyncTrain stopped after 0 of 4 updates: worker \d could not build the model, and every worker builds it the same way: /);
    expect(err.message.endsWith(fix), err.message).to.equal(true);
    const told = [err.message, ...warnings].join('\n');
    expect(told.split('registerClass(BrakesTestDoubler)'), 'the class and the fix are said once, not once per worker').to.have.length(2);
    expect(err.message, "neither tfjs's list of reasons nor a stack").not.to.match(/following reasons|\n\s+at /);
    expect(err.stats.steps).to.equal(0);
    expect(err.stats.workers.filter((w) => w.failure !== undefined)).to.have.length(1);

    expect((await asyncTrain({ ...options, setupModule: customLayer })).steps).to.equal(4);
    model.dispose();
    data.dispose();
  });

  it('setupModule may be ESM with top-level await, and a file: URL (what import.meta.resolve gives): the workers import() it', async () => {
    const model = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 3 }), new BrakesTestDoubler({ name: 'double' }), tf.layers.dense({ units: 1 })] });
    const data = tensorData(tf.ones([16, 4]), tf.zeros([16, 1]));
    const options: AsyncTrainOptions = { model, data, loss: 'meanSquaredError', optimizer: sgd({ lr: 0.01 }), workers: 1, steps: 4, batchSize: 4, backend: 'cpu', logger: new SilentLogger() };
    for (const setupModule of [customLayerTla, pathToFileURL(customLayerTla).href, pathToFileURL(customLayer).href]) {
      expect((await asyncTrain({ ...options, setupModule })).steps, setupModule).to.equal(4);
    }
    model.dispose();
    data.dispose();
  });

  it('each gradient is computed on the weights it was sent: the run equals its serial replay with the measured staleness', async () => {
    // L = mean((x w)^2) with x = 1: gradient 2 w. Replay w_{k+1} = w_k - lr 2 w_{k - s_k} in float64.
    const m = linear(1, 1, 64);
    const staleness: number[] = [];
    const lr = 0.05;
    const stats = await asyncTrain({
      ...base(m),
      setupModule: undefined,
      optimizer: sgd({ lr }),
      steps: 50,
      workers: 2,
      backend: 'wasm',
      onUpdate: (u) => void staleness.push(u.staleness),
    });
    expect(stats.steps).to.equal(50);
    expect(staleness).to.have.length(50);
    expect(stats.staleness.mean).to.be.closeTo(staleness.reduce((a, b) => a + b, 0) / 50, 1e-12);
    expect(stats.staleness.max).to.equal(Math.max(...staleness));
    const w = [1];
    staleness.forEach((s, k) => w.push(w[k] - lr * 2 * w[k - s]));
    expect(m.kernel()[0]).to.be.closeTo(w[50], 1e-6);
    // the staleness mattered: a synchronous run lands elsewhere
    expect(Math.abs(w[50] - (1 - lr * 2) ** 50)).to.be.greaterThan(1e-6);
    m.model.dispose();
    m.data.dispose();
  });

  describe('BatchNorm moving statistics (non-trainable weights)', () => {
    /** dense(4->3) - BatchNorm(momentum) - dense(1), seeded; random regression data. */
    function bnModel(momentum = 0.5) {
      const init = (seed: number) => tf.initializers.glorotUniform({ seed });
      return tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 3, kernelInitializer: init(1) }),
          tf.layers.batchNormalization({ momentum }),
          tf.layers.dense({ units: 1, kernelInitializer: init(2) }),
        ],
      });
    }
    const n = 32;
    const options = (model: tf.LayersModel, data: AsyncTrainOptions['data']): AsyncTrainOptions => ({
      model,
      data,
      loss: 'meanSquaredError',
      optimizer: sgd({ lr: 0.05 }),
      workers: 2,
      steps: 20,
      batchSize: 4,
      backend: 'cpu',
      timeoutMs: 30_000, // room for a busy machine: a stopped worker makes the run single-worker
      logger: new SilentLogger(),
    });
    const data = () => tensorData(tf.randomNormal([n, 4], 1, 2, 'float32', 7), tf.randomNormal([n, 1], 0, 1, 'float32', 8));

    /**
     * The serial replay of a one-worker run (seed 3, batches of 4): the worker's batches,
     * rebuilt the way it builds them, trained on the main thread with plain SGD; with the
     * layers' weight penalties in the loss, and each constrained weight projected after
     * the step by tfjs-layers itself (a layer weight's write() applies its constraint).
     */
    function serialReplay(model: tf.LayersModel, d: ReturnType<typeof data>, o: { lr: number; steps: number; penalties?: boolean; project?: boolean }): void {
      const batches = shardBatches({ index: 0, data: shareData(d), shard: shardOf(0, 1, n), batchSize: 4, seed: 3 } as WorkerInit);
      const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
      for (let k = 0; k < o.steps; k++) {
        const { x, y } = batches.next().value;
        tf.tidy(() => {
          const { grads } = tf.variableGrads(() => {
            const mse = tf.losses.meanSquaredError(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar;
            return o.penalties ? (tf.add(mse, tf.addN(model.layers.flatMap((l) => l.calculateLosses()))) as tf.Scalar) : mse;
          }, vars);
          vars.forEach((v) => v.assign(tf.sub(v, tf.mul(o.lr, grads[v.name]))));
        });
        if (o.project) model.trainableWeights.filter((w) => w.constraint).forEach((w) => w.write(tf.clone(w.read())));
        tf.dispose([x, y]);
      }
    }

    it('one worker: weights and moving statistics equal a serial replay of the same batches', async () => {
      const model = bnModel();
      const replay = bnModel();
      const d = data();
      const lr = 0.1;
      const steps = 12;
      const before = tf.memory().numTensors;
      const stats = await asyncTrain({ ...options(model, d), optimizer: sgd({ lr }), workers: 1, steps, seed: 3 });
      expect(stats.steps).to.equal(steps);
      expect(tf.memory().numTensors).to.equal(before);

      serialReplay(replay, d, { lr, steps });
      const got = model.getWeights().map((w) => Array.from(w.dataSync()));
      const want = replay.getWeights().map((w) => Array.from(w.dataSync()));
      const movingMean = model.nonTrainableWeights[0].read().dataSync();
      expect(Array.from(movingMean).some((v) => v !== 0)).to.equal(true); // the statistics did move
      got.forEach((g, i) => g.forEach((v, j) => expect(v).to.be.closeTo(want[i][j], 1e-5)));
      tf.dispose([model, replay].flatMap((m) => m.weights.map((w) => w.read())));
      d.dispose();
    });

    it("one worker, a model with weight penalties (regularizers): the worker adds them to the loss as model.fit does, so the weights equal a serial replay with them", async () => {
      const regularized = () => tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), kernelRegularizer: tf.regularizers.l2({ l2: 0.3 }), biasRegularizer: tf.regularizers.l1({ l1: 0.05 }), biasInitializer: 'ones' }),
          tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }), kernelRegularizer: tf.regularizers.l1l2({ l1: 0.02, l2: 0.1 }) }),
        ],
      });
      const [model, replay, unregularized] = [regularized(), regularized(), regularized()];
      const d = data();
      const lr = 0.01;
      const steps = 8;
      await asyncTrain({ ...options(model, d), optimizer: sgd({ lr }), workers: 1, steps, seed: 3 });
      serialReplay(replay, d, { lr, steps, penalties: true });
      serialReplay(unregularized, d, { lr, steps });
      const [got, want, without] = [model, replay, unregularized].map((m) => m.getWeights().flatMap((w) => Array.from(w.dataSync())));
      got.forEach((v, j) => expect(v, `weight ${j}`).to.be.closeTo(want[j], 1e-5));
      expect(Math.max(...got.map((v, j) => Math.abs(v - without[j]))), 'the penalties made a difference').to.be.greaterThan(1e-3);
      tf.dispose([model, replay, unregularized].flatMap((m) => m.weights.map((w) => w.read())));
      d.dispose();
    });

    it("one worker, a model with weight constraints: the master projects each constrained weight after its update (as the trainer and Keras do), so the weights equal a serial replay that projects; 'ignore' does not", async () => {
      const constrained = () => tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 3, kernelInitializer: tf.initializers.randomNormal({ stddev: 1, seed: 1 }), kernelConstraint: tf.constraints.maxNorm({ maxValue: 0.5, axis: 0 }), biasConstraint: tf.constraints.nonNeg() }),
          tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
        ],
      });
      const [model, ignored, replay] = [constrained(), constrained(), constrained()];
      const d = data();
      const lr = 0.01;
      const steps = 8;
      await asyncTrain({ ...options(model, d), optimizer: sgd({ lr }), workers: 1, steps, seed: 3 });
      await asyncTrain({ ...options(ignored, d), optimizer: sgd({ lr }), workers: 1, steps, seed: 3, constraints: 'ignore' });
      serialReplay(replay, d, { lr, steps, project: true });
      const [got, want, without] = [model, replay, ignored].map((m) => m.getWeights().flatMap((w) => Array.from(w.dataSync())));
      got.forEach((v, j) => expect(v, `weight ${j}`).to.be.closeTo(want[j], 1e-5));
      expect(Math.max(...got.map((v, j) => Math.abs(v - without[j]))), "'ignore' trained other weights").to.be.greaterThan(1e-3);
      tf.dispose([model, ignored, replay].flatMap((m) => m.weights.map((w) => w.read())));
      d.dispose();
    });

    it('two workers: each worker starts from the master statistics, and the master adds the change of each gradient it applies', async () => {
      // lr 0 and identical samples: every batch has the same per-unit mean mu, so BatchNorm
      // (momentum 0.99) moves the moving mean it was sent, m, by 0.01 (mu - m). With the
      // measured staleness s_k of update k the master's values follow
      // m_{k+1} = m_k + 0.01 (mu - m_{k - s_k}); workers that kept their own statistics, or a
      // master that took the worker's values instead of adding its change, would not.
      const model = bnModel(0.99);
      const x = tf.tile(tf.tensor2d([[0.5, -1, 2, 1]]), [n, 1]);
      const d = tensorData(x, tf.zeros([n, 1]));
      const mu = Array.from((model.layers[0].apply(x.slice(0, 1)) as tf.Tensor).dataSync());
      const bn = model.layers[1];
      const seen: number[][] = [];
      const staleness: number[] = [];
      const stats = await asyncTrain({
        ...options(model, d),
        optimizer: sgd({ lr: 0 }),
        onUpdate: (u) => {
          staleness.push(u.staleness);
          seen.push(Array.from(bn.getWeights()[2].dataSync()));
        },
      });
      expect(stats.steps).to.equal(20);
      // Both workers start on version 0, so the second gradient applied is stale unless a
      // worker was stopped (a slow machine past timeoutMs): say which, if so.
      expect(stats.workers.map((w) => w.failure ?? 'ok')).to.deep.equal(['ok', 'ok']);
      expect(stats.staleness.max).to.be.at.least(1); // the workers overlapped
      const chain: number[][] = [mu.map(() => 0)];
      staleness.forEach((s, k) => chain.push(chain[k].map((m, u) => m + 0.01 * (mu[u] - chain[k - s][u]))));
      seen.forEach((m, k) => m.forEach((v, u) => expect(v).to.be.closeTo(chain[k + 1][u], 1e-5)));
      model.dispose();
      d.dispose();
    });
  });

  it("dropout draws by core's noise rule (seed, batch serial, layer): a one-worker run equals a serial replay whose Dropout is seeded by the rule, and a second run repeats it bitwise", async () => {
    const n = 32;
    const dropoutMlp = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ inputShape: [4], units: 16, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
          tf.layers.dropout({ rate: 0.5, name: 'drop' }),
          tf.layers.dense({ units: 1, kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
        ],
      });
    const d = tensorData(tf.randomNormal([n, 4], 1, 2, 'float32', 7), tf.randomNormal([n, 1], 0, 1, 'float32', 8));
    const [lr, steps, seed] = [0.05, 10, 3];
    const run = async () => {
      const model = dropoutMlp();
      await asyncTrain({ model, data: d, loss: 'meanSquaredError', optimizer: sgd({ lr }), workers: 1, steps, batchSize: 4, backend: 'cpu', seed, timeoutMs: 30_000, logger: new SilentLogger() });
      const weights = model.getWeights().flatMap((w) => Array.from(w.dataSync()));
      model.dispose();
      return weights;
    };
    const [first, second] = [await run(), await run()];
    expect(second).to.deep.equal(first);
    // The oracle: the worker's batches trained on the main thread with tfjs's own Dropout, seeded for batch k by the rule.
    const replay = dropoutMlp();
    const drop = replay.getLayer('drop') as unknown as { seed?: number };
    const batches = shardBatches({ index: 0, data: shareData(d), shard: shardOf(0, 1, n), batchSize: 4, seed } as WorkerInit);
    const vars = replay.trainableWeights.map((w) => w.read() as tf.Variable);
    for (let k = 0; k < steps; k++) {
      const { x, y } = batches.next().value;
      drop.seed = noiseSeed({ noiseKey: noiseKey(seed, k) }, 'drop');
      tf.tidy(() => {
        const { grads } = tf.variableGrads(() => tf.losses.meanSquaredError(y, replay.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, vars);
        vars.forEach((v) => v.assign(tf.sub(v, tf.mul(lr, grads[v.name]))));
      });
      tf.dispose([x, y]);
    }
    const want = replay.getWeights().flatMap((w) => Array.from(w.dataSync()));
    first.forEach((v, j) => expect(v, `weight ${j}`).to.be.closeTo(want[j], 1e-5));
    replay.dispose();
    d.dispose();
  });

  for (const [fault, failure] of [
    ['exit', /exited with code 7/],
    ['crash', /crashed: injected crash/],
    ['throw', /failed: Error: injected loss failure/],
    ['hang', /did not answer within 1000 ms/],
    ['hang-start', /did not start within 15000 ms/],
  ] as const) {
    it(`a worker that ${{ exit: 'exits', crash: 'crashes', throw: 'throws', hang: 'hangs', 'hang-start': 'hangs at start' }[fault]} is reported and the others finish the run`, async () => {
      const m = linear(4, 0);
      const before = tf.memory().numTensors;
      const options = { ...base(m), workers: 2, timeoutMs: 1000, startTimeoutMs: fault === 'hang-start' ? 15_000 : 60_000 }; // long enough for a healthy worker to start on a loaded machine (4000 ms failed at a load average of 17)
      const stats = await withFault(fault, () => asyncTrain(options));
      expect(stats.complete).to.equal(true);
      expect(stats.steps).to.equal(60);
      expect(stats.workers[1].failure).to.match(failure);
      expect(stats.workers[1].applied).to.be.at.most(3);
      expect(stats.workers[0].failure).to.equal(undefined);
      expect(m.kernel()).to.deep.equal([30, 30, 30, 30]);
      expectAccounted(stats);
      expect(tf.memory().numTensors).to.equal(before);
      m.model.dispose();
      m.data.dispose();
    });
  }

  it('when every worker fails it stops cleanly and rejects with the stats so far', async () => {
    const m = linear(4, 0);
    const before = tf.memory().numTensors;
    let err: unknown;
    await withFault('exit-all', () => asyncTrain({ ...base(m), steps: 1000 })).catch((e) => (err = e));
    expect(err).to.be.instanceOf(AsyncTrainError);
    const e = err as AsyncTrainError;
    expect(e.code).to.equal('TAPFIT_E_ASYNC_WORKERS');
    expect(e.message).to.match(/every worker failed after \d+ of 1000 updates \(workers 0-2 exited with code 7\)\.$/);
    expect(e.stats.complete).to.equal(false);
    expect(e.stats.steps).to.be.within(1, 6); // each of 3 workers sent at most 2
    expect(m.kernel()).to.deep.equal(Array(4).fill(0.5 * e.stats.steps)); // the updates applied are kept
    expectAccounted(e.stats);
    expect(tf.memory().numTensors).to.equal(before);
    m.model.dispose();
    m.data.dispose();
  });

  it('when every worker fails the same way (a setup module that throws), the rejection says the reason once, naming the workers; distinct reasons stay apart', async () => {
    const m = linear(4, 0);
    const rejection = async (fault: string) => {
      const warnings: string[] = [];
      const logger = { info: () => undefined, warn: (w: string) => void warnings.push(w) };
      const err: unknown = await withFault(fault, () => asyncTrain({ ...base(m), workers: 4, logger })).then(() => undefined, (e: unknown) => e);
      expect(err).to.be.instanceOf(AsyncTrainError);
      const e = err as AsyncTrainError;
      expect(e.code).to.equal('TAPFIT_E_ASYNC_WORKERS');
      expect(e.stats.steps).to.equal(0);
      // Oracle: the workers' own reasons (stats.workers[i].failure), each in the message once.
      const reasons = new Map<string, number[]>();
      for (const w of e.stats.workers) reasons.set(w.failure!, [...(reasons.get(w.failure!) ?? []), w.index]);
      for (const [reason, workers] of reasons) {
        expect(e.message.split(reason).length - 1, `${reason} for workers ${workers}`).to.equal(1);
        // the warnings say it in full once too, then name the worker that did
        expect(warnings.filter((w) => w.includes(reason)), reason).to.have.length(1);
      }
      expect(warnings).to.have.length(4);
      return { message: e.message, reasons };
    };
    const same = await rejection('setup-throw-all');
    expect([...same.reasons.values()]).to.deep.equal([[0, 1, 2, 3]]);
    expect(same.message).to.match(/^asyncTrain: every worker failed after 0 of 60 updates \(workers 0-3 failed: Error: injected setup failure\n/);
    expect(same.message.split('injected setup failure').length - 1).to.equal(1);
    const parity = await rejection('setup-parity-all');
    expect([...parity.reasons.values()]).to.deep.equal([[0, 2], [1, 3]]);
    expect(parity.message).to.match(/\(workers 0, 2 failed: Error: injected setup failure in an even-numbered worker\n[^]*; workers 1, 3 failed: Error: injected setup failure in an odd-numbered worker\n/);
    m.model.dispose();
    m.data.dispose();
  });

  it("non-finite losses: 'skip' skips them, 'throw' (default) stops with TAPFIT_E_NON_FINITE", async () => {
    const m = linear(4, 0);
    const stats = await withFault('nan', () => asyncTrain({ ...base(m), nonFinite: 'skip' }));
    expect(stats.skipped).to.equal(1);
    expect(m.kernel()).to.deep.equal([30, 30, 30, 30]);
    let err: unknown;
    await withFault('nan', () => asyncTrain(base(m))).catch((e) => (err = e));
    expect((err as AsyncTrainError).code).to.equal('TAPFIT_E_NON_FINITE');
    expect((err as AsyncTrainError).stats.complete).to.equal(false);
    m.model.dispose();
    m.data.dispose();
  });

  it("a non-finite gradient with a finite loss is refused, naming the worker: 'skip' skips it, 'throw' stops", async () => {
    const m = linear(4, 0);
    const warnings: string[] = [];
    const stats = await withFault('nan-grad', () => asyncTrain({ ...base(m), nonFinite: 'skip', logger: { info: () => {}, warn: (w) => warnings.push(w) } }));
    expect(stats.skipped).to.equal(1);
    expect(m.kernel()).to.deep.equal([30, 30, 30, 30]); // 60 clean updates of 0.5
    expect(warnings.join('\n')).to.match(/worker 1 returned a non-finite gradient for '[^']+' .*skipped/);
    let err: unknown;
    await withFault('nan-grad', () => asyncTrain(base(m))).catch((e) => (err = e));
    expect((err as AsyncTrainError).code).to.equal('TAPFIT_E_NON_FINITE');
    expect((err as AsyncTrainError).message).to.match(/worker 1 returned a non-finite gradient/);
    m.model.dispose();
    m.data.dispose();
  });

  describe('GradientLedger', () => {
    it('accepts an id once, only from the worker it was issued to', () => {
      const l = new GradientLedger();
      const a = l.issue(0);
      const b = l.issue(1);
      expect(l.accept(a, 1)).to.equal(false); // foreign
      expect(l.accept(a, 0)).to.equal(true);
      expect(l.accept(a, 0)).to.equal(false); // repeated
      expect(l.accept(99, 0)).to.equal(false); // never issued
      expect(l.outstanding).to.equal(1);
      expect(l.drop(1)).to.equal(1);
      expect(l.accept(b, 1)).to.equal(false); // late answer of a dropped worker
      expect(l.outstanding).to.equal(0);
    });
  });

  describe('bad options', () => {
    const m = linear(4, 0, 16);
    after(() => {
      m.model.dispose();
      m.data.dispose();
    });
    const cases: Array<[string, Partial<AsyncTrainOptions> | Record<string, unknown>, RegExp]> = [
      ['workers 0', { workers: 0 }, /option 'workers' must be an integer >= 1 \(got 0\)/],
      ['steps 2.5', { steps: 2.5 }, /option 'steps' must be an integer >= 1/],
      ['a loss function', { loss: (() => 0) as never }, /option 'loss' must be one of .*export it as `loss` from setupModule/],
      ['a black-box optimizer', { optimizer: tf.train.sgd(0.1) as never }, /option 'optimizer' .*a black-box tf.train optimizer cannot be used/],
      ['a relative setupModule', { setupModule: './x.js' }, /option 'setupModule' must be an absolute path/],
      ['a typo', { worker: 2 }, /unknown option\(s\) 'worker'/],
      ['constraints that are neither apply nor ignore', { constraints: 'on' as never }, /option 'constraints' must be 'apply' or 'ignore'/],
      ['shards smaller than a batch', { workers: 3, batchSize: 8 }, /16 samples give each of 3 workers at least 5, fewer than batchSize 8/],
    ];
    for (const [what, patch, message] of cases) {
      it(what, async () => {
        let err: unknown;
        await asyncTrain({ ...base(m), ...patch } as AsyncTrainOptions).catch((e) => (err = e));
        expect((err as Error).message).to.match(message);
      });
    }
  });
});
