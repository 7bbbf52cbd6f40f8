import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as path from 'node:path';
import { sgd, SilentLogger, tensorData } from '@tapfit/core';
import { asyncTrain, AsyncTrainError, type AsyncTrainOptions, type AsyncTrainStats } from '../src';
import { GradientLedger } from '../src/async/ledger';
import { useBackend } from './helpers';

const faulty = path.join(__dirname, 'fixtures', 'faulty-worker.js');

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
    expect(stats.workers.every((w) => w.applied > 0 && w.failure === undefined)).to.equal(true);
    expect(stats.staleness.max).to.be.at.least(1); // three workers really overlapped
    expect(stats.rejected).to.equal(0);
    expect(stats.samplesPerSecond).to.be.greaterThan(0);
    expect(stats.meanComputeMs).to.be.greaterThan(0);
    expect(stats.meanApplyMs).to.be.greaterThan(0);
    expect(tf.memory().numTensors).to.equal(before);
    m.model.dispose();
    m.data.dispose();
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

  for (const [fault, failure] of [
    ['exit', /exited with code 7/],
    ['crash', /crashed: injected crash/],
    ['throw', /failed: Error: injected loss failure/],
    ['hang', /did not answer within 1000 ms/],
    ['hang-start', /did not start within 4000 ms/],
  ] as const) {
    it(`a worker that ${{ exit: 'exits', crash: 'crashes', throw: 'throws', hang: 'hangs', 'hang-start': 'hangs at start' }[fault]} is reported and the others finish the run`, async () => {
      const m = linear(4, 0);
      const before = tf.memory().numTensors;
      const options = { ...base(m), workers: 2, timeoutMs: 1000, startTimeoutMs: fault === 'hang-start' ? 4000 : 60_000 };
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
    expect(e.message).to.match(/every worker failed after \d+ of 1000 updates \(worker 0 exited with code 7; worker 1 exited/);
    expect(e.stats.complete).to.equal(false);
    expect(e.stats.steps).to.be.within(1, 6); // each of 3 workers sent at most 2
    expect(m.kernel()).to.deep.equal(Array(4).fill(0.5 * e.stats.steps)); // the updates applied are kept
    expectAccounted(e.stats);
    expect(tf.memory().numTensors).to.equal(before);
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
      ['shards smaller than a batch', { workers: 3, batchSize: 8 }, /16 samples give each of 3 workers at least 5, fewer than batchSize 8/],
    ];
    for (const [what, patch, message] of cases) {
      it(what, async () => {
        let err: unknown;
        await asyncTrain({ ...base(m), ...patch } as AsyncTrainOptions).catch((e) => (err = e));
        expect((err as Error).message).to.match(message);
      });
    }

    it('a model with non-trainable weights (BatchNorm statistics)', async () => {
      const bn = tf.sequential({ layers: [tf.layers.dense({ inputShape: [4], units: 2 }), tf.layers.batchNormalization()] });
      let err: unknown;
      await asyncTrain({ ...base(m), model: bn }).catch((e) => (err = e));
      expect((err as Error).message).to.match(/non-trainable weights .*moving_mean.*Use a model without them/);
      bn.dispose();
    });
  });
});
