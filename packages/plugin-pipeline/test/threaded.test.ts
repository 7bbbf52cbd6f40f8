import * as tf from '@tensorflow/tfjs';
import { sgd, SilentLogger, tensorData, Trainer } from '@tapfit/core';
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { pipeline, ThreadedPipeline, type PipelineCommonOptions } from '../src';
import { resolveThreadedOptions } from '../src/threaded/options';
import { PipelineTestDoubler } from './fixtures/custom-layer';

/**
 * 'penalties': an L2 kernel penalty on stage 1 and an L1 bias penalty on stage 3 (none on
 * stage 2, which passes stage 3's on); 'constraints': a maxNorm kernel on stage 1 (its
 * initial columns are longer) and a nonNeg bias on stage 3; 'dropout': a Dropout after d1,
 * in stage 1 (D = 4: its backward of t runs after the forwards of t + 1 .. t + 4).
 */
type Extras = 'none' | 'penalties' | 'constraints' | 'dropout';
const build = (extras: Extras = 'none') =>
  tf.sequential({
    layers: [
      tf.layers.dense({ name: 'd1', inputShape: [4], units: 6, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }), ...(extras === 'penalties' ? { kernelRegularizer: tf.regularizers.l2({ l2: 0.05 }) } : extras === 'constraints' ? { kernelConstraint: tf.constraints.maxNorm({ maxValue: 0.5, axis: 0 }) } : {}) }),
      ...(extras === 'dropout' ? [tf.layers.dropout({ name: 'drop', rate: 0.3 })] : []),
      tf.layers.dense({ name: 'd2', units: 5, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      tf.layers.dense({ name: 'd3', units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: 3 }), ...(extras === 'penalties' ? { biasInitializer: tf.initializers.constant({ value: 0.3 }), biasRegularizer: tf.regularizers.l1({ l1: 0.02 }) } : extras === 'constraints' ? { biasConstraint: tf.constraints.nonNeg() } : {}) }),
    ],
  });

const samples = (n: number) => ({
  x: tf.randomNormal([n, 4], 0, 1, 'float32', 5),
  y: tf.tensor1d(Array.from({ length: n }, (_, i) => (i * 7) % 3), 'int32'),
});

const optimizer = { lr: 0.05, momentum: 0.9 };
const faulty = path.join(__dirname, 'fixtures', 'faulty-stage.js');
const customLayer = path.join(__dirname, 'fixtures', 'custom-layer.js');
const customLayerTla = path.join(__dirname, 'fixtures', 'custom-layer-tla.mjs');
const setupFault = path.join(__dirname, 'fixtures', 'setup-fault.js');

type Run = { weights: number[][]; losses: number[] };

async function simulated(options: PipelineCommonOptions, n: number, microBatch: number, extras: Extras = 'none', seed = 0): Promise<Run> {
  const { x, y } = samples(n);
  const model = build(extras);
  const t = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd(optimizer), plugins: [pipeline({ ...options, boundaries: ['d2', 'd3'] })], logger: new SilentLogger(), seed });
  const data = tensorData(x, y);
  const losses: number[] = [];
  await t.fit(data, { epochs: 1, batchSize: microBatch, shuffle: false, callbacks: [{ onBatchEnd: (_b: number, logs?: Record<string, number>) => void losses.push(logs!.loss) }] });
  const weights = model.trainableWeights.map((v) => Array.from(v.read().dataSync()));
  t.dispose();
  data.dispose();
  return { weights, losses };
}

async function threaded(options: PipelineCommonOptions, n: number, microBatch: number, extras: Extras = 'none', seed = 0): Promise<Run> {
  const { x, y } = samples(n);
  const model = build(extras);
  const pipe = await ThreadedPipeline.start({ model, boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', seed, ...options } as never);
  let losses: number[] = [];
  try {
    losses = await pipe.train(x, y, { microBatch });
    expect(losses).to.have.length(n / microBatch);
    // Every stage ran every micro-batch forward once and (all but the last, which does both in its forward) backward once.
    const stats = await pipe.stats();
    expect(stats.map((s) => [s.forwards, s.backwards])).to.deep.equal([[n / microBatch, n / microBatch], [n / microBatch, n / microBatch], [n / microBatch, 0]]);
    await pipe.syncWeights();
  } finally {
    await pipe.close();
  }
  const weights = model.trainableWeights.map((v) => Array.from(v.read().dataSync()));
  tf.dispose([x, y]);
  model.dispose();
  return { weights, losses };
}

describe('threaded pipeline (one worker thread per stage) against the one-process simulator', function () {
  this.timeout(120000);
  // The workers run on cpu: so does the simulator here, whatever backend earlier tests left selected.
  let previous = '';
  before(async () => {
    previous = tf.getBackend();
    await tf.setBackend('cpu');
  });
  after(async () => {
    if (previous && previous !== 'cpu') await tf.setBackend(previous);
  });
  for (const [label, options, mb, extras] of [
    ['PB + SC + LWP (velocity), batch 1', { compensation: 'sc', prediction: 'lwp-velocity' }, 1, 'none'],
    ['PB alone, weight delta prediction, micro-batches of 2', { prediction: 'lwp-delta' }, 2, 'none'],
    ['weight stashing, extraDelay 1', { weightStashing: true, extraDelay: 1 }, 1, 'none'],
    ['PB + SC + LWP, batch 1, weight penalties on stages 1 and 3 (in the gradients and the losses)', { compensation: 'sc', prediction: 'lwp-velocity' }, 1, 'penalties'],
    ['PB + SC + LWP, batch 1, weight constraints on stages 1 and 3', { compensation: 'sc', prediction: 'lwp-velocity' }, 1, 'constraints'],
  ] as const) {
    it(`3 stages (D = ${label.includes('extraDelay') ? '[5, 3, 1]' : '[4, 2, 0]'}), ${label}: the same weights and losses for the same samples in the same order`, async () => {
      // 40 samples: at batch 1 three input chunks (16, 16, 8), so losses and 'done' cross chunk ends.
      const n = 40;
      const a = await simulated(options, n, mb, extras);
      const b = await threaded(options, n, mb, extras);
      a.weights.forEach((w, i) => w.forEach((v, j) => expect(b.weights[i][j], `variable ${i}[${j}]`).to.be.closeTo(v, 1e-6)));
      expect(a.losses).to.have.length(n / mb);
      a.losses.forEach((v, t) => expect(b.losses[t], `loss of micro-batch ${t}`).to.be.closeTo(v, 1e-5));
      // The weights moved: the comparison is not between two untouched models.
      const init = build().trainableWeights.map((v) => Array.from(v.read().dataSync()));
      expect(Math.abs(a.weights[0][0] - init[0][0])).to.be.above(1e-4);
      if (extras === 'constraints') {
        // Both sides projected: the kernel's columns within maxNorm (they start longer), the bias non-negative.
        const columns = (w: number[]) => [0, 1, 2, 3, 4, 5].map((c) => Math.hypot(...[0, 1, 2, 3].map((r) => w[r * 6 + c])));
        expect(Math.max(...columns(init[0])), 'an initial column is longer than 0.5').to.be.above(0.5);
        columns(b.weights[0]).forEach((norm) => expect(norm).to.be.at.most(0.5 + 1e-6));
        b.weights[5].forEach((v) => expect(v).to.be.at.least(0));
      }
    });
  }

  for (const [label, options] of [
    ['PB + SC + LWP', { compensation: 'sc', prediction: 'lwp-velocity' }],
    ['weight stashing', { weightStashing: true }],
  ] as const) {
    it(`a Dropout in stage 1 (rebuilt from JSON in the worker; D = 4), ${label}: seed 3 gives the weights and losses of the simulator in a trainer with seed 3`, async () => {
      const n = 24;
      const a = await simulated(options, n, 1, 'dropout', 3);
      const b = await threaded(options, n, 1, 'dropout', 3);
      a.weights.forEach((w, i) => w.forEach((v, j) => expect(b.weights[i][j], `variable ${i}[${j}]`).to.be.closeTo(v, 1e-6)));
      a.losses.forEach((v, t) => expect(b.losses[t], `loss of micro-batch ${t}`).to.be.closeTo(v, 1e-5));
      // The masks matter (the test can fail): another seed trains to other weights.
      const other = await simulated(options, n, 1, 'dropout', 4);
      expect(Math.max(...other.weights[0].map((v, j) => Math.abs(v - a.weights[0][j])))).to.be.above(1e-4);
    });
  }

  it('start warms every stage up (passes on a throwaway copy of its layers, reported by stats) and the run is still the simulator\'s, Dropout masks included', async () => {
    const n = 24;
    const options = { compensation: 'sc', prediction: 'lwp-velocity' } as const;
    const a = await simulated(options, n, 1, 'dropout', 3);
    const { x, y } = samples(n);
    const model = build('dropout');
    const pipe = await ThreadedPipeline.start({ model, boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', seed: 3, warmUp: 25, ...options });
    try {
      // Every stage ran its passes before it said ready, and no sample of the run yet.
      const warmed = await pipe.stats();
      expect(warmed.map((s) => [s.warmUpPasses, s.forwards, s.backwards])).to.deep.equal([[25, 0, 0], [25, 0, 0], [25, 0, 0]]);
      warmed.forEach((s) => expect(s.warmUpMs).to.be.above(0));
      const losses = await pipe.train(x, y);
      await pipe.syncWeights();
      const weights = model.trainableWeights.map((v) => Array.from(v.read().dataSync()));
      // The warm-up left the stages' weights, optimizer state and masks alone: the same run as without it.
      a.weights.forEach((w, i) => w.forEach((v, j) => expect(weights[i][j], `variable ${i}[${j}]`).to.be.closeTo(v, 1e-6)));
      a.losses.forEach((v, t) => expect(losses[t], `loss of micro-batch ${t}`).to.be.closeTo(v, 1e-5));
    } finally {
      await pipe.close();
      tf.dispose([x, y]);
      model.dispose();
    }
    const cold = await ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', warmUp: 0 });
    try {
      expect((await cold.stats()).map((s) => s.warmUpPasses)).to.deep.equal([0, 0]);
    } finally {
      await cold.close();
    }
    // warmUpMs caps the passes: a pass that has started runs to its end, none starts after the budget.
    const capped = await ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', warmUp: 100_000, warmUpMs: 1 });
    try {
      for (const s of await capped.stats()) expect(s.warmUpPasses, `stage ${s.stage}`).to.be.within(1, 99);
    } finally {
      await capped.close();
    }
  });

  it("the warm-up rehearses on a copy and leaves nothing in the worker: each stage holds as many tensors at its first sample as without a warm-up; a last stage whose loss takes only class indices is rehearsed too", async () => {
    const firstSample = async (stage: number, warmUp: number) => {
      process.env.PIPELINE_FAULT = `count:${stage}:0`;
      const { x, y } = samples(4);
      const pipe = await ThreadedPipeline.start({ model: build(), boundaries: ['d2', 'd3'], loss: 'sparseCategoricalCrossentropy', optimizer, backend: 'cpu', setupModule: faulty, warmUp });
      try {
        const passes = (await pipe.stats()).map((s) => s.warmUpPasses);
        const message = await pipe.train(x, y).then(() => '', (e: Error) => e.message);
        return { passes, tensors: Number(/tensors=(\d+)/.exec(message)?.[1]) };
      } finally {
        await pipe.close();
        tf.dispose([x, y]);
        delete process.env.PIPELINE_FAULT;
      }
    };
    for (const stage of [1, 3]) {
      const cold = await firstSample(stage, 0);
      const warm = await firstSample(stage, 30);
      expect(cold.passes).to.deep.equal([0, 0, 0]);
      expect(warm.passes, 'sparseCategoricalCrossentropy refuses one-hot labels: the last stage rehearses with class indices').to.deep.equal([30, 30, 30]);
      expect(cold.tensors, `stage ${stage}'s tensor count`).to.be.above(0);
      expect(warm.tensors, `stage ${stage}'s tensor count`).to.equal(cold.tensors);
    }
  });

  it('a stage that throws stops the pipeline with an error naming the stage and the sample', async () => {
    process.env.PIPELINE_FAULT = 'throw:2:3';
    const { x, y } = samples(8);
    const pipe = await ThreadedPipeline.start({ model: build(), boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', setupModule: faulty });
    try {
      const err = await pipe.train(x, y).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message, err?.message).to.match(/pipeline stage 2 failed on sample 3: .*injected fault/);
      expect(err?.message).to.match(/no update was retried or applied twice/);
      await pipe.train(x, y).then(
        () => expect.fail('a failed pipeline must refuse more samples'),
        (e: Error) => expect(e).to.equal(err),
      );
    } finally {
      delete process.env.PIPELINE_FAULT;
      await pipe.close();
      tf.dispose([x, y]);
    }
  });

  for (const [label, boundaries, nanSample] of [
    ['the last stage after a delayed forward', ['d2', 'd3'], 5],
    ['a last stage with no delay (forward and backward at once)', ['d3'], 2],
  ] as const) {
    it(`a non-finite loss stops the pipeline naming the last stage and the sample, before its update (${label})`, async () => {
      const { x, y } = samples(8);
      const bad = tf.tidy(() => tf.where(tf.equal(tf.range(0, 8).reshape([8, 1]).tile([1, 4]), nanSample), tf.fill([8, 4], NaN), x));
      const pipe = await ThreadedPipeline.start({ model: build(), boundaries: [...boundaries], loss: 'softmaxCrossEntropy', optimizer, backend: 'wasm' });
      try {
        const err = await pipe.train(bad, y).then(
          () => null,
          (e: Error) => e,
        );
        const last = boundaries.length + 1;
        expect(err?.message, err?.message).to.match(new RegExp(`pipeline stage ${last} failed on sample ${nanSample}: .*non-finite loss \\(NaN\\) at sample ${nanSample}; no update was applied for it`));
      } finally {
        await pipe.close();
        tf.dispose([x, y, bad]);
      }
    });
  }

  it('a worker that dies stops the pipeline naming the stage', async () => {
    process.env.PIPELINE_FAULT = 'exit:1:2';
    const { x, y } = samples(8);
    const pipe = await ThreadedPipeline.start({ model: build(), boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', setupModule: faulty });
    try {
      const err = await pipe.train(x, y).then(
        () => null,
        (e: Error) => e,
      );
      expect(err?.message).to.match(/pipeline stage 1's worker exited \(code 3\)/);
    } finally {
      delete process.env.PIPELINE_FAULT;
      await pipe.close();
      tf.dispose([x, y]);
    }
  });

  /** A model with a custom layer (PipelineTestDoubler) that the stage workers know only through setupModule. */
  const doublerModel = () =>
    tf.sequential({
      layers: [
        tf.layers.dense({ name: 'd1', inputShape: [4], units: 6, activation: 'tanh' }),
        new PipelineTestDoubler({ name: 'double' }),
        tf.layers.dense({ name: 'd2', units: 3 }),
      ],
    });

  it("a model with a custom layer registered only on the calling thread: start names the class and says to register it in setupModule; registered there, it trains", async () => {
    const err = await ThreadedPipeline.start({ model: doublerModel(), boundaries: ['d2'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' }).then(
      async (p) => (await p.close(), null),
      (e: Error & { code?: string }) => e,
    );
    expect(err?.code).to.equal('TAPFIT_E_PLUGIN_FAILED');
    expect(err?.message).to.match(/pipeline stage \d failed at start: .*cannot rebuild the model's layer class 'PipelineTestDoubler' from its JSON/);
    expect(err?.message).to.contain('Register it in a module passed as setupModule (at its top level or in its setup(): tf.serialization.registerClass(PipelineTestDoubler))');

    const { x, y } = samples(8);
    const pipe = await ThreadedPipeline.start({ model: doublerModel(), boundaries: ['d2'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', setupModule: customLayer });
    try {
      expect(await pipe.train(x, y)).to.have.length(8);
    } finally {
      await pipe.close();
      tf.dispose([x, y]);
    }
  });

  it('setupModule may be ESM with top-level await, and a file: URL (what import.meta.resolve gives): the workers import() it', async () => {
    const { x, y } = samples(8);
    try {
      for (const setupModule of [customLayerTla, pathToFileURL(customLayerTla).href, pathToFileURL(customLayer).href]) {
        const pipe = await ThreadedPipeline.start({ model: doublerModel(), boundaries: ['d2'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', setupModule });
        try {
          expect(await pipe.train(x, y), setupModule).to.have.length(8);
        } finally {
          await pipe.close();
        }
      }
    } finally {
      tf.dispose([x, y]);
    }
  });

  it('a worker that exits or hangs while it starts: the error says it was at start (no samples in flight); startTimeoutMs (default 120000, as asyncTrain) ends a start that never gets ready', async () => {
    const start = (fault: string, extra: Record<string, unknown> = {}) => {
      process.env.PIPELINE_SETUP_FAULT = fault;
      const began = performance.now();
      return ThreadedPipeline.start({ model: build(), boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', setupModule: setupFault, ...extra } as never).then(
        async (p) => (await p.close(), expect.fail(`started despite ${fault}`)),
        (e: Error) => ({ message: e.message, ms: performance.now() - began }),
      );
    };
    try {
      const exited = await start('exit:2');
      expect(exited.message).to.contain("pipeline stage 2's worker exited (code 3) at start, before it was ready.");
      expect(exited.message).not.to.contain('in flight');
      const ranOut = await start('never:1');
      expect(ranOut.message).to.contain("pipeline stage 1's worker exited (code 0) at start, before it was ready: its setup ended without the stage becoming ready (does setupModule's setup return a promise that never settles?)");
      // Long enough for the healthy stages to start on a loaded machine (3000 ms failed at a load average of 17).
      const hung = await start('hang:3', { startTimeoutMs: 12000 });
      expect(hung.message).to.contain('pipeline stage 3 was not ready within 12000 ms (startTimeoutMs)');
      expect(hung.ms).to.be.below(60000);
    } finally {
      delete process.env.PIPELINE_SETUP_FAULT;
    }
    expect(resolveThreadedOptions({ model: build(), loss: 'softmaxCrossEntropy', optimizer }).startTimeoutMs).to.equal(120000);
  });

  it('streams in the micro-batch given to start by default; a bad microBatch or constraints setting is refused naming the option', async () => {
    await ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', microBatch: 0 }).then(
      () => expect.fail('expected an error'),
      (e: Error) => expect(e.message).to.match(/ThreadedPipeline.start: option 'microBatch' must be a positive integer .*\(got 0\)/),
    );
    await ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', constraints: 'on' as never }).then(
      () => expect.fail('expected an error'),
      (e: Error) => expect(e.message).to.match(/ThreadedPipeline.start: option 'constraints' must be 'apply' or 'ignore' \(got 'on'\)/),
    );
    const { x, y } = samples(8);
    const pipe = await ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', microBatch: 4 });
    try {
      expect(await pipe.train(x, y)).to.have.length(2);
      expect(await pipe.train(x, y, { microBatch: 2 })).to.have.length(4);
      await pipe.train(x, y, { microBatch: 1.5 }).then(
        () => expect.fail('expected an error'),
        (e: Error) => expect(e.message).to.match(/train: microBatch must be a positive integer/),
      );
    } finally {
      await pipe.close();
      tf.dispose([x, y]);
    }
  });

  it('refuses a sample count it cannot stream in equal micro-batches, naming stage 1', async () => {
    const { x, y } = samples(5);
    const pipe = await ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' });
    try {
      await pipe.train(x, y, { microBatch: 2 }).then(
        () => expect.fail('expected an error'),
        (e: Error) => expect(e.message).to.match(/pipeline stage 1 cannot stream 5 samples in micro-batches of 2/),
      );
    } finally {
      await pipe.close();
      tf.dispose([x, y]);
    }
  });

  it("checks every option on the calling thread before a worker starts, naming it (compensation 'SC' would otherwise train without compensation)", async () => {
    const refused = (extra: Record<string, unknown>, pattern: RegExp) =>
      ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', ...extra } as never).then(
        async (p) => {
          await p.close();
          expect.fail(`accepted ${JSON.stringify(extra)}`);
        },
        (e: Error) => expect(e.message).to.match(pattern),
      );
    await refused({ compensation: 'SC' }, /option 'compensation' must be 'none' or 'sc'/);
    await refused({ prediction: 'lwp' }, /option 'prediction' must be one of 'none', 'lwp-velocity', 'lwp-delta'/);
    await refused({ boundaries: ['d2'] }, /give one of 'stages' \(balanced\) or 'boundaries' \(explicit\), not both/);
    await refused({ optimizer: { lr: 0.1 } }, /option 'optimizer.momentum' must be a finite number/);
    await refused({ loss: 'crossEntropy' }, /unknown loss 'crossEntropy'/);
    await refused({ backend: 'webgl' }, /option 'backend' must be 'cpu' or 'wasm'/);
    await refused({ setupModule: 'fixtures/faulty-stage.js' }, /option 'setupModule' must be an absolute path/);
    await refused({ warmUp: -1 }, /option 'warmUp' must be a whole number >= 0 \(passes\)/);
    await refused({ warmUpMs: 0 }, /option 'warmUpMs' must be > 0/);
  });

  it('labels come one per sample: a mismatch is refused before anything streams, and the pipeline goes on', async () => {
    const { x, y } = samples(8);
    const short = y.slice(0, 6);
    const pipe = await ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' });
    try {
      await pipe.train(x, short).then(
        () => expect.fail('expected an error'),
        (e: Error) => expect(e.message).to.match(/pipeline stage 2 needs one label per sample: x has 8 samples but y has 6/),
      );
      expect(await pipe.train(x, y)).to.have.length(8);
    } finally {
      await pipe.close();
      tf.dispose([x, y, short]);
    }
  });

  it('one train() at a time; after close() every call is refused and a request in flight is rejected: none hangs', async () => {
    const { x, y } = samples(8);
    const pipe = await ThreadedPipeline.start({ model: build(), stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' });
    try {
      const first = pipe.train(x, y);
      await pipe.train(x, y).then(
        () => expect.fail('a second stream was accepted'),
        (e: Error) => expect(e.message).to.match(/train\(\) was called while an earlier train\(\) is still streaming; await it first/),
      );
      expect(await first).to.have.length(8);
      // Its reply cannot arrive before close() runs.
      const inFlight = pipe.stats().then(
        () => new Error('a request in flight at close() resolved'),
        (e: Error) => e,
      );
      await pipe.close();
      expect((await inFlight).message).to.match(/this ThreadedPipeline is closed; start a new one/);
      for (const call of [() => pipe.train(x, y), () => pipe.stats(), () => pipe.syncWeights()]) {
        await call().then(
          () => expect.fail('accepted after close()'),
          (e: Error) => expect(e.message).to.match(/this ThreadedPipeline is closed/),
        );
      }
    } finally {
      await pipe.close();
      tf.dispose([x, y]);
    }
  });

  it("syncWeights writes the stages' weights into the model and leaks no tensor", async () => {
    const { x, y } = samples(8);
    const model = build();
    const pipe = await ThreadedPipeline.start({ model, stages: 2, loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' });
    try {
      const initial = model.trainableWeights.map((w) => Array.from(w.read().dataSync()));
      await pipe.train(x, y);
      await pipe.syncWeights();
      const trained = model.trainableWeights.map((w) => Array.from(w.read().dataSync()));
      expect(trained).to.not.deep.equal(initial);
      const before = tf.memory().numTensors;
      await pipe.syncWeights();
      await pipe.syncWeights();
      expect(tf.memory().numTensors).to.equal(before);
      expect(model.trainableWeights.map((w) => Array.from(w.read().dataSync()))).to.deep.equal(trained);
    } finally {
      await pipe.close();
      model.dispose();
      tf.dispose([x, y]);
    }
  });

  it("close() writes the stages' weights into the model first; a failed pipeline, or one closed mid-stream, only stops", async () => {
    const { x, y } = samples(8);
    const read = (m: tf.LayersModel) => m.trainableWeights.map((w) => Array.from(w.read().dataSync()));
    const synced = build();
    const a = await ThreadedPipeline.start({ model: synced, boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' });
    const closed = build();
    const b = await ThreadedPipeline.start({ model: closed, boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' });
    const initial = read(closed);
    try {
      await a.train(x, y);
      await a.syncWeights();
      await b.train(x, y);
    } finally {
      await a.close();
      await b.close();
    }
    expect(read(closed)).to.not.deep.equal(initial);
    expect(read(closed)).to.deep.equal(read(synced));

    // The stages are at different samples mid-stream: nothing is written back.
    const streaming = build();
    const c = await ThreadedPipeline.start({ model: streaming, boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' });
    const stream = c.train(x, y).then(
      () => null,
      (e: Error) => e,
    );
    await c.close();
    expect((await stream)?.message).to.match(/this ThreadedPipeline is closed/);
    expect(read(streaming)).to.deep.equal(initial);

    process.env.PIPELINE_FAULT = 'throw:2:3';
    const failing = build();
    const d = await ThreadedPipeline.start({ model: failing, boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu', setupModule: faulty });
    try {
      await d.train(x, y).then(
        () => expect.fail('the injected fault did not stop the pipeline'),
        (e: Error) => expect(e.message).to.match(/pipeline stage 2 failed on sample 3/),
      );
    } finally {
      delete process.env.PIPELINE_FAULT;
      await d.close();
    }
    expect(read(failing)).to.deep.equal(initial);

    // A model disposed before close() (a `finally` that frees it first) is left alone.
    const disposed = build();
    const e = await ThreadedPipeline.start({ model: disposed, boundaries: ['d2', 'd3'], loss: 'softmaxCrossEntropy', optimizer, backend: 'cpu' });
    disposed.dispose();
    await e.close();
    tf.dispose([x, y]);
    [synced, closed, streaming, failing].forEach((m) => m.dispose());
  });

  it('idle workers do not keep node running: a script that trains and never calls close() exits, after its train() and syncWeights()', async () => {
    const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'no-close.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | string>((resolve) => {
      const timer = setTimeout(() => {
        child.kill();
        resolve('still running after 60 s');
      }, 60000);
      child.on('exit', (c) => {
        clearTimeout(timer);
        resolve(c ?? 'killed');
      });
    });
    expect(code, out).to.equal(0);
    expect(out).to.match(/trained 64/);
  });
});
