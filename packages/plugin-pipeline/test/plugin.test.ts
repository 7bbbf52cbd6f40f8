import * as tf from '@tensorflow/tfjs';
import { adam, fromLayersModel, readParam, segmentModel, sgd, SilentLogger, Trainer, type Segment, type TapfitError, type TapfitPlugin } from '@tapfit/core';
import { blobData, tinyModel } from '@tapfit/core/testing';
import { expect } from 'chai';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { balancedStarts, measureUpdateCosts, pipeline, ThreadedPipeline, type PipelineOptions } from '../src';

const trainer = (options: PipelineOptions, model: tf.LayersModel | ReturnType<typeof segmentModel> = tinyModel(), optimizer = sgd({ lr: 0.1, momentum: 0.9 })) =>
  new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer, plugins: [pipeline(options)], logger: new SilentLogger() });

async function setupError(options: PipelineOptions, model?: tf.LayersModel | ReturnType<typeof segmentModel>, optimizer?: ReturnType<typeof sgd>): Promise<string> {
  const t = trainer(options, model, optimizer);
  try {
    await t.setup();
    const data = blobData(8);
    try {
      await t.fit(data, { epochs: 1, batchSize: 2 });
    } finally {
      data.dispose();
    }
  } catch (err) {
    return String((err as Error).message) + ' ' + String(((err as Error).cause as Error | undefined)?.message ?? '');
  } finally {
    t.dispose();
  }
  return 'no error';
}

describe('pipeline plugin: partitioning and describe()', () => {
  it('balances contiguous stages by cost (smallest largest stage)', () => {
    expect(balancedStarts([1, 1, 1, 1], 2)).to.deep.equal([0, 2]);
    expect(balancedStarts([5, 1, 1, 1, 1, 1], 2)).to.deep.equal([0, 1]);
    expect(balancedStarts([1, 1, 1, 9], 2)).to.deep.equal([0, 3]);
    expect(balancedStarts([3, 3, 3], 3)).to.deep.equal([0, 1, 2]);
    // The last stage costed apart (it does not recompute): it takes more segments when it is cheaper.
    expect(balancedStarts([1, 1, 1, 1], 2, [0.1, 0.1, 0.1, 0.1])).to.deep.equal([0, 1]);
  });

  it('measures each segment\'s update on copies: nothing for a segment without parameters, more for more parameters, weights untouched, no leak', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ inputShape: [8], units: 4 }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.dense({ units: 512 }),
      ],
    });
    const segments = fromLayersModel(model).segments;
    const before = model.trainableWeights.map((w) => Array.from(w.read().dataSync()));
    const tensors = tf.memory().numTensors;
    const costs = measureUpdateCosts(segments, sgd({ lr: 0.5, momentum: 0.9 }).transforms);
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(costs).to.have.length(3);
    expect(costs[1]).to.equal(0);
    expect(costs[0]).to.be.above(0);
    expect(costs[2]).to.be.above(0);
    model.trainableWeights.forEach((w, i) => expect(Array.from(w.read().dataSync())).to.deep.equal(before[i]));
    model.dispose();
  });

  it('describe() lists the stages with D_s, parameters, weight versions and stash; planMemory gets them as extraBytes', async () => {
    const plugin = pipeline({ stages: 2, prediction: 'lwp-delta' });
    const t = new Trainer({ model: tinyModel(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), plugins: [plugin], logger: new SilentLogger() });
    await t.setup();
    const text = plugin.describe();
    expect(text).to.match(/2 stage\(s\)/);
    const rows = plugin.rows();
    expect(rows.map((r) => [r.stage, r.delay, r.params, r.inFlight])).to.deep.equal([
      [1, 2, 4 * 8 + 8, 3],
      [2, 0, 8 * 3 + 3, 1],
    ]);
    // Stage 1 holds D + 1 = 3 versions plus w_prev of its 40 weights; its input is 4 floats per sample.
    expect(rows[0].versionBytes).to.equal(4 * 40 * 4);
    expect(rows[0].stashBytes).to.equal(16);
    expect(rows[1].stashBytes).to.equal(32);
    const plan = t.describe().memoryPlan!;
    expect(plan.extraBytes.map((e) => e.bytes)).to.deep.equal([640, 16, 32]);
    t.dispose();
  });

  it("trainer.describe() names the pipeline's Backprop and its SC in the update chain, and prints no per-segment plan it does not realise", async () => {
    const lines: string[] = [];
    const t = new Trainer({
      model: tinyModel(),
      loss: 'softmaxCrossEntropy',
      optimizer: sgd({ lr: 0.1, momentum: 0.9 }),
      plugins: [pipeline({ stages: 2, compensation: 'sc' })],
      logger: { info: (m: string) => void lines.push(m), warn: () => {} },
    });
    await t.setup();
    t.describe();
    const text = lines[lines.length - 1];
    expect(text).to.match(/^update: momentum \[spike, by pipeline\] -> lr$/m);
    expect(text).to.match(/^backprop: plugin 'pipeline' \(stage simulator: stashes stage inputs, re-runs stages in the backward\)$/m);
    // Stage 1 holds D + 1 = 3 versions of its 40 weights (480 B). The stash rows are per sample
    // (the option microBatch, default 1): 4 and 8 floats; a trainer step stashes its whole batch.
    expect(text).to.match(
      /^memory plan: not used by the Backprop of plugin 'pipeline'; extra memory:\n {2}\+ pipeline: stage 1 weight versions \(D_s = 2\): 480 B\n {2}\+ pipeline: stage 1 stashed input per sample \(a step stashes its batch\): 16 B\n {2}\+ pipeline: stage 2 stashed input per sample \(a step stashes its batch\): 32 B$/m,
    );
    expect(text).not.to.match(/ store$/m);
    t.dispose();
  });
});

describe('pipeline plugin: bad input names the stage and the fix', () => {
  it('more stages than segments', async () => {
    expect(await setupError({ stages: 3 })).to.match(/3 stages asked for, but the model has only 2 segments/);
    expect(await setupError({ boundaries: ['out', 'hidden'] })).to.match(/3 stages asked for/);
  });

  it('a model whose layers read a mask (one segment) is refused naming the mask, in the simulator and the threaded pipeline', async () => {
    const masked = () =>
      tf.sequential({ layers: [tf.layers.embedding({ inputDim: 10, outputDim: 4, inputLength: 6, maskZero: true }), tf.layers.lstm({ units: 3 }), tf.layers.dense({ units: 3, activation: 'softmax' })] });
    expect(await setupError({ stages: 2, inputShape: [6] }, masked())).to.match(/2 stages asked for, but the model is one segment: Embedding '.*' makes a mask/);
    const model = masked();
    const err = await ThreadedPipeline.start({ model, stages: 2, loss: 'softmaxCrossEntropy', optimizer: { lr: 0.1, momentum: 0.9 }, backend: 'cpu' }).then(
      () => new Error('started'),
      (e: Error) => e,
    );
    expect(err.message).to.match(/one segment: Embedding '.*' makes a mask .* without the pipeline/);
    model.dispose();
  });

  it('an unknown or out-of-order boundary', async () => {
    expect(await setupError({ boundaries: ['nope'] })).to.match(/boundary 'nope' \(start of stage 2\) is not a segment/);
    expect(await setupError({ boundaries: ['hidden'] })).to.match(/boundary 'hidden' \(start of stage 2\) does not come after/);
  });

  it('neither or both of stages and boundaries', () => {
    // Neither compiles (PipelineSplit); JavaScript callers get the run-time refusal.
    expect(() => pipeline({} as never)).to.throw(/exactly one of 'stages'/);
    expect(() => pipeline({ stages: 2, boundaries: ['out'] } as never)).to.throw(/exactly one of 'stages'/);
    expect(() => pipeline({ stages: 2, prediction: 'lwp' as never })).to.throw(/prediction/);
  });

  it('a stage boundary after a multi-output (reversible) segment', async () => {
    const w = tf.variable(tf.randomNormal([4, 3], 0, 0.1, 'float32', 1));
    const u = tf.variable(tf.randomNormal([4, 3], 0, 0.1, 'float32', 2));
    const split: Segment = { name: 'split', params: [w], forward: ([x]) => [tf.matMul(x, w), tf.matMul(x, w)], inverse: (ys) => ys };
    const merge: Segment = { name: 'merge', params: [u], forward: ([a]) => [tf.add(a, tf.matMul(tf.ones([a.shape[0], 4]), u))] };
    const msg = await setupError({ boundaries: ['merge'] }, segmentModel([split, merge], { inputShape: [4] }));
    expect(msg).to.match(/stage 1 \(segments split\) returns 2 tensors/);
    expect(msg).to.match(/move the boundary/);
    tf.dispose([w, u]);
  });

  it('a variable shared by two stages', async () => {
    const w = tf.variable(tf.randomNormal([4, 4], 0, 0.1, 'float32', 1));
    const a: Segment = { name: 'a', params: [w], forward: ([x]) => [tf.matMul(x, w)] };
    const b: Segment = { name: 'b', params: [w], forward: ([x]) => [tf.matMul(x, w)] };
    expect(await setupError({ boundaries: ['b'] }, segmentModel([a, b], { inputShape: [4] }))).to.match(/read by stage 1 and stage 2 .* put the segments that share it in one stage/);
    tf.dispose(w);
  });

  it('SC or the velocity form without momentum in the chain', async () => {
    expect(await setupError({ stages: 2, compensation: 'sc' }, tinyModel(), adam({ lr: 0.01 }) as never)).to.match(/compensation 'sc' replaces the optimizer chain's momentum member/);
    // momentum 0 leaves plain SGD: the message names the chain's members and the fix.
    expect(await setupError({ stages: 2, compensation: 'sc' }, tinyModel(), sgd({ lr: 0.1, momentum: 0 }))).to.match(
      /the optimizer chain \(members: lr\) has no momentum member: use sgd\(\{ lr, momentum \}\) with momentum > 0, or compensation 'none'\.$/,
    );
    expect(await setupError({ stages: 2, prediction: 'lwp-velocity' }, tinyModel(), sgd({ lr: 0.1 }))).to.match(/'lwp-velocity' needs an update chain with momentum .* 'lwp-delta'/);
    expect(await setupError({ stages: 2, compensation: 'sc' }, tinyModel(), sgd({ lr: 0.1, momentum: 0.9, nesterov: true }))).to.match(/plain momentum/);
  });

  it('balancing without an input shape', async () => {
    const w = tf.variable(tf.randomNormal([4, 3], 0, 0.1, 'float32', 1));
    const s: Segment = { name: 'a', params: [w], forward: ([x]) => [tf.matMul(x, w)] };
    const t: Segment = { name: 'b', params: [], forward: ([x]) => [tf.relu(x)] };
    expect(await setupError({ stages: 2 }, segmentModel([s, t]))).to.match(/needs the model's input shape; pass 'inputShape'/);
    tf.dispose(w);
  });
});

describe('pipeline plugin: what it cannot compose with is refused at registration, with the reason', () => {
  const stub = (name: string): TapfitPlugin => ({ name, core: '*', apply() {} });
  const register = (options: PipelineOptions, other: string) => () =>
    new Trainer({ model: tinyModel(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), plugins: [stub(other), pipeline(options)], logger: new SilentLogger() });

  it('revsilo and memory-budget: it cannot realise a memory plan; delayed-gradients: a second delay', () => {
    expect(register({ stages: 2 }, 'revsilo')).to.throw(/plugins 'pipeline' and 'revsilo' cannot be used together: the pipeline's Backprop .* cannot realise a memory plan: revsilo's 'invert' segments/);
    expect(register({ stages: 2 }, 'memory-budget')).to.throw(/plugins 'pipeline' and 'memory-budget' cannot be used together: .*'recompute' choices would be ignored/);
    expect(register({ stages: 2 }, 'delayed-gradients')).to.throw(/plugins 'pipeline' and 'delayed-gradients' cannot be used together: the pipeline already delays .* Use the pipeline's 'extraDelay' option instead\. Remove one of them\./);
  });

  it("adaptive-braking only with compensation 'sc' (both replace the momentum member); without SC, braking the pipeline's delay composes", () => {
    expect(register({ stages: 2, compensation: 'sc' }, 'adaptive-braking')).to.throw(/plugins 'pipeline' and 'adaptive-braking' cannot be used together: both replace the update chain's momentum member/);
    expect(register({ stages: 2 }, 'adaptive-braking')).not.to.throw();
  });

  it("compensation 'sc' refuses a momentum member that is already a delay compensation (e.g. brakes' Adaptive Braking), at setup", async () => {
    const compensated = sgd({ lr: 0.1, momentum: 0.9 });
    const braked = { ...compensated, transforms: compensated.transforms.map((t) => (t.name === 'momentum' ? { ...t, hyperparams: { ...t.hyperparams, compensation: 'adaptive-braking' } } : t)) };
    expect(await setupError({ stages: 2, compensation: 'sc' }, tinyModel(), braked as never)).to.match(/'momentum' member, which is already a delay compensation \('adaptive-braking'\)/);
  });
});

describe('pipeline plugin: one live trainer per instance', () => {
  it("a second live trainer is refused (core names 'pipeline'); once the first is disposed, the instance trains a new trainer, on another model, as a fresh instance does", async () => {
    const options: PipelineOptions = { stages: 2, prediction: 'lwp-velocity', compensation: 'sc' };
    const newTrainer = (plugin: TapfitPlugin, hidden: number) => {
      const model = tinyModel({ hidden });
      const t = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), plugins: [plugin], logger: new SilentLogger() });
      return Object.assign(t, { weights: () => model.trainableWeights.map((w) => Array.from(w.read().dataSync())) });
    };
    const train = async (t: ReturnType<typeof newTrainer>) => {
      const data = blobData(16);
      try {
        await t.fit(data, { epochs: 2, batchSize: 2, shuffle: false });
      } finally {
        data.dispose();
      }
      return t.weights();
    };

    const fresh = pipeline(options);
    const oracle = newTrainer(fresh, 6);
    const expected = { weights: await train(oracle), rows: fresh.rows() };
    oracle.dispose();

    const reused = pipeline(options);
    const first = newTrainer(reused, 8);
    await train(first);
    let refused: (Error & { code?: string }) | undefined;
    try {
      newTrainer(reused, 6).dispose();
    } catch (err) {
      refused = err as Error & { code?: string };
    }
    expect(refused?.code).to.equal('TAPFIT_E_STATE');
    expect(refused?.message).to.contain("plugin 'pipeline' is applied to another trainer that has not been disposed");
    first.dispose();

    const second = newTrainer(reused, 6);
    expect(await train(second), 'the reused instance trains as a fresh one').to.deep.equal(expected.weights);
    expect(reused.rows(), 'its stage table is the new model\'s').to.deep.equal(expected.rows);
    second.dispose();
  });
});

describe('pipeline plugin: metrics', () => {
  it('a delayed last stage calls the loss twice a step (its backward, then the forward value it reports): the logged metrics are those of the reported value', async () => {
    // The loss itself as a metric: logged per batch, it must equal the logged loss exactly.
    const lossAsMetric = { name: 'same', fn: (y: tf.Tensor, p: tf.Tensor) => tf.losses.softmaxCrossEntropy(y.rank === p.rank ? y : tf.oneHot(tf.cast(y, 'int32'), p.shape[p.rank - 1]), p) as tf.Scalar };
    const t = new Trainer({ model: tinyModel(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.5, momentum: 0.9 }), metrics: [lossAsMetric], plugins: [pipeline({ stages: 2, extraDelay: 1 })], logger: new SilentLogger() });
    const data = blobData(32);
    const logged: Record<string, number>[] = [];
    try {
      const h = await t.fit(data, { epochs: 1, batchSize: 2, shuffle: false, callbacks: { onBatchEnd: async (_b: number, logs?: Record<string, number>) => void logged.push({ ...logs! }) } });
      expect(logged).to.have.length(16);
      for (const l of logged) expect(l.same).to.be.closeTo(l.loss, 1e-6);
      expect(h.history.same[0]).to.be.closeTo(h.history.loss[0], 1e-6);
    } finally {
      t.dispose();
      data.dispose();
    }
  });
});

describe('pipeline plugin: checkpoints', () => {
  it('a checkpoint names the prediction, compensation and stashing its weight versions were made with; resuming with others is refused before anything is applied', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-pipeline-ckpt-'));
    const data = blobData(16);
    try {
      const t = trainer({ stages: 2, prediction: 'none' });
      await t.fit(data, { epochs: 1, batchSize: 2, shuffle: false });
      await t.save(dir);
      t.dispose();
      for (const [options, pattern] of [
        [{ stages: 2, prediction: 'lwp-delta' }, /saved with prediction "none", this pipeline has prediction "lwp-delta"/],
        [{ stages: 2, compensation: 'sc' }, /saved with compensation "none", this pipeline has compensation "sc"/],
        [{ stages: 2, weightStashing: true }, /saved with weightStashing false, this pipeline has weightStashing true/],
      ] as [PipelineOptions, RegExp][]) {
        const model = tinyModel();
        const before = model.trainableWeights.map((w) => Array.from(w.read().dataSync()));
        const err = await Trainer.resume(dir, { model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), plugins: [pipeline(options)], logger: new SilentLogger() }).then(
          () => null,
          (e: Error) => e,
        );
        expect(err?.message).to.match(/does not fit this pipeline/);
        expect(err?.message).to.match(pattern);
        // Checked before the model's weights were written.
        expect(model.trainableWeights.map((w) => Array.from(w.read().dataSync()))).to.deep.equal(before);
        model.dispose();
      }
      const same = await Trainer.resume(dir, { model: tinyModel(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1, momentum: 0.9 }), plugins: [pipeline({ stages: 2, prediction: 'none' })], logger: new SilentLogger() });
      expect(same.step).to.equal(8);
      same.dispose();
    } finally {
      data.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
  describe('the split a checkpoint was saved with', () => {
    /**
     * Four dense segments; d1's inference forward (what 'stages: 2' times) busy-waits 10 ms, so the
     * measured split is [d1 | d2 d3 d4] every time, while training forwards run at full speed.
     */
    const model = () => {
      const dense = (name: string, rows: number, cols: number, seed: number): Segment => {
        const w = tf.variable(tf.randomNormal([rows, cols], 0, 0.5, 'float32', seed));
        return {
          name,
          params: [w],
          forward: ([x], ctx) => {
            if (name === 'd1' && !ctx.training) for (const end = performance.now() + 10; performance.now() < end; );
            return [tf.tanh(tf.matMul(x as tf.Tensor2D, readParam(ctx, w) as tf.Tensor2D))];
          },
        };
      };
      return segmentModel([dense('d1', 4, 8, 1), dense('d2', 8, 8, 2), dense('d3', 8, 6, 3), dense('d4', 6, 3, 4)], { inputShape: [4], outputShape: [3] });
    };
    const weights = (t: Trainer) => Object.values(t.variables).map((v) => Array.from(v.dataSync()));
    const options = { compensation: 'sc', prediction: 'lwp-velocity' } as const;
    const make = (p: PipelineOptions, plugins: TapfitPlugin[] = [], m: ReturnType<typeof model> | tf.LayersModel = model()) => ({ model: m, loss: 'softmaxCrossEntropy' as const, optimizer: sgd({ lr: 0.05, momentum: 0.9 }), plugins: [pipeline(p), ...plugins], logger: new SilentLogger() });
    const free = (t: Trainer) => {
      tf.dispose(Object.values(t.variables));
      t.dispose();
    };
    /** A checkpoint of one epoch trained with `saved` (in a temporary folder, removed after `body`). */
    const afterSaving = async (saved: PipelineOptions, body: (dir: string, savedStages: (readonly string[])[]) => Promise<void>) => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-pipeline-split-'));
      const data = blobData(8);
      try {
        const t = new Trainer(make({ ...saved, ...options }));
        await t.fit(data, { epochs: 1, batchSize: 2, shuffle: false });
        await t.save(dir);
        const savedStages = (t.plugins[0] as ReturnType<typeof pipeline>).stages.map((st) => st.segments);
        free(t);
        await body(dir, savedStages);
      } finally {
        data.dispose();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    };
    /** A resume with `p` expected to be refused, on a fresh model: the error and its first weights before and after (a refusal applies nothing). */
    const refusedResume = async (dir: string, p: PipelineOptions) => {
      const m = model();
      const before = m.segments.map((seg) => Array.from(seg.params[0].dataSync()));
      const err = await Trainer.resume(dir, make({ ...p, ...options }, [], m)).then(
        () => null,
        (e: TapfitError) => e,
      );
      const after = m.segments.map((seg) => Array.from(seg.params[0].dataSync()));
      tf.dispose(m.segments.flatMap((seg) => seg.params));
      return { err, before, after };
    };

    it("'stages: S' resumes with the saved split, not a new measurement: bitwise equal to training straight through with that split", async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-pipeline-split-'));
      const data = blobData(16);
      try {
        // The run was saved with the split at d3 (what another process measured, say).
        const straight = new Trainer(make({ boundaries: ['d3'], ...options }));
        await straight.fit(data, { epochs: 2, batchSize: 2, shuffle: false });
        const holder: { t?: Trainer } = {};
        const stop: TapfitPlugin = { name: 'stop', core: '^0.1.0', apply: ({ hooks }) => hooks.batchEnd.tap('stop', (i) => void (i.epoch === 0 && i.batch === 4 && holder.t!.stop())) };
        const interrupted = (holder.t = new Trainer(make({ boundaries: ['d3'], ...options }, [stop])));
        await interrupted.fit(data, { epochs: 2, batchSize: 2, shuffle: false });
        await interrupted.save(dir);
        free(interrupted);
        const measured = new Trainer(make({ stages: 2, ...options }));
        await measured.setup();
        expect((measured.plugins[0] as ReturnType<typeof pipeline>).stages.map((st) => st.segments)).to.deep.equal([['d1'], ['d2', 'd3', 'd4']]);
        free(measured);
        const resumed = await Trainer.resume(dir, make({ stages: 2, ...options }));
        expect((resumed.plugins[0] as ReturnType<typeof pipeline>).stages.map((st) => st.segments)).to.deep.equal([['d1', 'd2'], ['d3', 'd4']]);
        await resumed.fit(data, { epochs: 2, batchSize: 2, shuffle: false });
        expect(resumed.step).to.equal(straight.step);
        expect(weights(resumed)).to.deep.equal(weights(straight));
        free(straight);
        free(resumed);
      } finally {
        data.dispose();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });

    it("after resuming with the saved split, describe(), the verbose stage table and planMemory's figures are that split's, as when resuming with its boundaries", async () => {
      await afterSaving({ boundaries: ['d3'] }, async (dir) => {
        const resume = async (p: PipelineOptions) => {
          const lines: string[] = [];
          const t = await Trainer.resume(dir, { ...make({ verbose: true, ...p, ...options }), logger: { info: (m: string) => void lines.push(m), warn: () => {} } });
          const plugin = t.plugins[0] as ReturnType<typeof pipeline>;
          // The stage table logged last (verbose) is the one the run goes on with.
          const logged = lines.filter((l) => l.startsWith('pipeline: 2 stage(s)')).at(-1);
          const seen = { stages: plugin.stages.map((st) => st.segments), table: plugin.describe(), logged, extraBytes: t.describe().memoryPlan!.extraBytes };
          free(t);
          return seen;
        };
        // The oracle: the saved split given as explicit boundaries, which this setup then partitions at.
        const given = await resume({ boundaries: ['d3'] });
        const balanced = await resume({ stages: 2 });
        // This setup measured [d1 | d2 d3 d4], whose stage 1 holds fewer weights and stashes a smaller input.
        expect(balanced.stages).to.deep.equal([['d1', 'd2'], ['d3', 'd4']]);
        expect(balanced.table).to.match(/^ {2}1 .* d1, d2$/m);
        expect(balanced.table).to.equal(given.table);
        expect(balanced.logged).to.equal(given.table);
        expect(balanced.extraBytes).to.deep.equal(given.extraBytes);
      });
    });

    it("another 'stages: S' than the checkpoint's is refused naming both stage counts, before anything is applied", async () => {
      await afterSaving({ stages: 2 }, async (dir, savedStages) => {
        expect(savedStages).to.deep.equal([['d1'], ['d2', 'd3', 'd4']]);
        const { err, before, after } = await refusedResume(dir, { stages: 3 });
        expect(err?.code).to.equal('TAPFIT_E_CHECKPOINT');
        expect(err?.message).to.match(/saved with 2 stages \(split at boundaries \['d2'\]\), this pipeline asks for stages: 3\. .*resume with stages: 2 \(or boundaries: \['d2'\]\)/);
        expect(after).to.deep.equal(before);
      });
    });

    it('explicit boundaries that differ from the saved split are refused naming the boundaries to pass, before anything is applied', async () => {
      await afterSaving({ boundaries: ['d3'] }, async (dir) => {
        const { err, before, after } = await refusedResume(dir, { boundaries: ['d2'] });
        expect(err?.message).to.match(/saved with stages split at boundaries \['d3'\], this pipeline has boundaries \['d2'\]; resume with boundaries: \['d3'\]/);
        expect(after).to.deep.equal(before);
      });
    });

    describe('a tfjs-layers model with unnamed layers, built again in this process (tfjs renumbers them: dense_Dense7 saved, dense_Dense10 now)', () => {
      const unnamed = () =>
        tf.sequential({
          layers: [0, 1, 2].map((i) =>
            tf.layers.dense({ units: i === 2 ? 3 : 8, activation: i === 2 ? 'linear' : 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed: i + 1 }), ...(i === 0 ? { inputShape: [4] } : {}) }),
          ),
        });
      const names = (t: Trainer) => t.model.segments.map((seg) => seg.name);
      const stagesOf = (t: Trainer) => (t.plugins[0] as ReturnType<typeof pipeline>).stages.map((st) => st.segments);
      const unnamedOptions = (p: PipelineOptions, plugins: TapfitPlugin[] = [], m = unnamed()) => make(p, plugins, m);
      const dispose = (...ts: Trainer[]) =>
        ts.forEach((t) => {
          t.model.layersModel!.dispose();
          t.dispose();
        });

      it("resumes (the split is compared by stage sizes, the names by core's sameVariable rule): bitwise equal to training straight through", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-pipeline-split-'));
        const data = blobData(16);
        try {
          const straight = new Trainer(unnamedOptions({ stages: 3 }));
          await straight.fit(data, { epochs: 2, batchSize: 2, shuffle: false });
          const holder: { t?: Trainer } = {};
          const stop: TapfitPlugin = { name: 'stop', core: '^0.1.0', apply: ({ hooks }) => hooks.batchEnd.tap('stop', (i) => void (i.epoch === 0 && i.batch === 4 && holder.t!.stop())) };
          const interrupted = (holder.t = new Trainer(unnamedOptions({ stages: 3 }, [stop])));
          await interrupted.fit(data, { epochs: 2, batchSize: 2, shuffle: false });
          await interrupted.save(dir);
          const resumed = await Trainer.resume(dir, unnamedOptions({ stages: 3 }));
          expect(names(resumed)).to.not.deep.equal(names(interrupted)); // the premise: renumbered
          await resumed.fit(data, { epochs: 2, batchSize: 2, shuffle: false });
          expect(resumed.step).to.equal(straight.step);
          expect(weights(resumed)).to.deep.equal(weights(straight));
          dispose(straight, interrupted, resumed);
        } finally {
          data.dispose();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      });

      it("'stages: S' takes the saved split in this model's names; other boundaries or another S are refused naming this model's boundaries; another model is refused", async () => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-pipeline-split-'));
        const data = blobData(8);
        try {
          const model = unnamed();
          const saving = new Trainer(unnamedOptions({ boundaries: [model.layers[2]!.name] }, [], model));
          await saving.fit(data, { epochs: 1, batchSize: 2, shuffle: false });
          await saving.save(dir);
          dispose(saving);
          const resumed = await Trainer.resume(dir, unnamedOptions({ stages: 2 }));
          const now = names(resumed);
          expect(stagesOf(resumed)).to.deep.equal([[now[0], now[1]], [now[2]]]);
          dispose(resumed);
          const refused = async (p: PipelineOptions, m = unnamed()) => {
            const err = await Trainer.resume(dir, unnamedOptions(p, [], m)).then(
              () => null,
              (e: TapfitError) => e,
            );
            const segments = m.layers.map((l) => l.name);
            m.dispose();
            return { err, segments };
          };
          const other = unnamed();
          const boundaries = await refused({ boundaries: [other.layers[1]!.name] }, other);
          expect(boundaries.err?.message).to.contain(`resume with boundaries: ['${boundaries.segments[2]}']`);
          const three = await refused({ stages: 3 });
          expect(three.err?.message).to.contain(`saved with 2 stages (split at boundaries ['${three.segments[2]}']), this pipeline asks for stages: 3`);
          // The same variables (what core checks first), one segment more: the pipeline's own check refuses it.
          const longer = unnamed();
          longer.add(tf.layers.activation({ activation: 'relu' }));
          const deeper = await refused({ stages: 2 }, longer);
          expect(deeper.err?.code).to.equal('TAPFIT_E_CHECKPOINT');
          expect(deeper.err?.message).to.match(/the checkpoint's stages name the segments .*; resume with the model the run was saved with/);
        } finally {
          data.dispose();
          fs.rmSync(dir, { recursive: true, force: true });
        }
      });
    });
  });
});
