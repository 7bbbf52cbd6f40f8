import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import * as path from 'node:path';
import { adam, AutodiffBackprop, dataParallel, resolveLoss, sgd, SilentLogger, storeAllPlan, PlannedBackprop, Tokens, Trainer, trainableVariables, type Backprop, type OptimizerSpec, type StepRequest, type TapfitPlugin } from '../../src';
import { describeTrainer } from '../../src/train/describe';
import { useBackend } from '../fixtures';
import { batchFor, maxRelativeDifference, smallCnn, smallMlp } from './fixtures/models';
import { withKernelPenalty } from './fixtures/penalty-loss';

const penaltyFixture = path.resolve(__dirname, 'fixtures', 'penalty-loss.js');

/** float32 sums in another order (the parts', then weighted): far below any real difference. */
const TOLERANCE = 1e-5;

const trainerFor = (model: tf.LayersModel, plugins: ReturnType<typeof dataParallel>[] = [], optimizer: OptimizerSpec = sgd({ lr: 0.1 })) =>
  new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer, logger: new SilentLogger(), plugins });

/** One Backprop.compute over the whole batch: the loss and every gradient, read back. */
function computed(trainer: Trainer, batch: { x: tf.Tensor; y: tf.Tensor }, backprop = trainer.resolve(Tokens.Backprop), tidy = true): { loss: number; grads: Record<string, Float32Array> } {
  const run = () => {
    const request: StepRequest = {
      x: batch.x,
      y: batch.y,
      segments: trainer.model.segments,
      ctx: { training: true, recomputing: false, step: 0 },
      variables: Object.values(trainer.variables),
      plan: storeAllPlan(trainer.model.segments.map((s) => s.name)),
      loss: resolveLoss('softmaxCrossEntropy'),
    };
    const { value, grads } = backprop.compute(request);
    return { loss: value.dataSync()[0]!, grads: Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, g.dataSync() as Float32Array])) };
  };
  return tidy ? tf.tidy(run) : run();
}

/** The data-parallel Backprop's loss and gradients against core's autodiff on the whole batch (the oracle). */
async function expectSameAsWholeBatch(build: () => tf.LayersModel, n: number, replicas = 2, backend: 'wasm' | 'cpu' = 'wasm'): Promise<void> {
  const model = build();
  const batch = batchFor(model, n);
  const trainer = trainerFor(model, [dataParallel({ replicas, backend })]);
  try {
    await trainer.setup();
    const split = computed(trainer, batch);
    const whole = computed(trainer, batch, new AutodiffBackprop());
    expect(Object.keys(split.grads).sort()).to.deep.equal(Object.keys(whole.grads).sort());
    expect(Math.abs(split.loss - whole.loss)).to.be.below(TOLERANCE);
    for (const name of Object.keys(whole.grads)) expect(maxRelativeDifference(split.grads[name]!, whole.grads[name]!), name).to.be.below(TOLERANCE);
  } finally {
    trainer.dispose();
    model.dispose();
    tf.dispose(batch);
  }
}

/** Losses of `steps` trainer steps on one batch and the final weights, with and without dataParallel, from the same initial weights. */
async function trainBoth(build: () => tf.LayersModel, optimizer: () => OptimizerSpec, steps: number, n = 31): Promise<{ losses: number[][]; weights: Float32Array[][] }> {
  const losses: number[][] = [];
  const weights: Float32Array[][] = [];
  for (const plugins of [[], [dataParallel()]]) {
    const model = build();
    const batch = batchFor(model, n);
    const trainer = trainerFor(model, plugins, optimizer());
    try {
      await trainer.setup();
      const seen: number[] = [];
      for (let step = 0; step < steps; step++) {
        const r = trainer.trainStep(batch, { epoch: 0, batch: step, step });
        seen.push(r.loss.dataSync()[0]!);
        r.loss.dispose();
      }
      losses.push(seen);
      weights.push(model.weights.map((w) => w.read().dataSync() as Float32Array));
    } finally {
      trainer.dispose();
      model.dispose();
      tf.dispose(batch);
    }
  }
  return { losses, weights };
}

describe('dataParallel: the gradients of a split batch are the whole batch\'s', () => {
  useBackend('wasm');

  it("an MLP's loss and gradients equal core's autodiff on the whole batch (even split)", async () => {
    await expectSameAsWholeBatch(() => smallMlp(), 32);
  });

  it('a small CNN, an odd batch (uneven split 17 + 16)', async () => {
    await expectSameAsWholeBatch(() => smallCnn(), 33);
  });

  it('3 replicas on a batch of 35 (parts 12, 12, 11)', async () => {
    await expectSameAsWholeBatch(() => smallMlp(), 35, 3);
  });

  it("workers on the cpu backend (main thread on wasm): the same, within the backends' float rounding", async () => {
    await expectSameAsWholeBatch(() => smallCnn(), 21, 2, 'cpu');
  });

  it('a batch smaller than the replicas runs whole on the main thread, with the same result', async () => {
    await expectSameAsWholeBatch(() => smallMlp(), 1);
  });

  it('a weight penalty (regularizer) counts once: one step equals a single-thread step, loss and weights', async () => {
    const { losses, weights } = await trainBoth(() => smallMlp({ penalty: true }), () => sgd({ lr: 0.1 }), 1, 31);
    expect(Math.abs(losses[1]![0]! - losses[0]![0]!)).to.be.below(TOLERANCE);
    weights[0]!.forEach((w, i) => expect(maxRelativeDifference(weights[1]![i]!, w)).to.be.below(TOLERANCE));
  });

  it('a loss decorated by a plugin (an L2 penalty wrapper), exported as setupModule\'s loss: every replica applies it, the run equals one thread\'s', async () => {
    const l2Penalty = (): TapfitPlugin => ({ name: 'l2-penalty', core: '^0.1.0', apply: ({ services, trainer }) => services.decorate(Tokens.Loss, (loss) => withKernelPenalty(loss, () => trainableVariables(trainer.model))) });
    const run = async (plugins: TapfitPlugin[]): Promise<Float32Array[]> => {
      const model = smallMlp();
      const batch = batchFor(model, 32);
      const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1 }), logger: new SilentLogger(), plugins });
      try {
        await trainer.fit(batch.x, batch.y, { epochs: 3, batchSize: 16, shuffle: false, verbose: 0 });
        return model.weights.map((w) => w.read().dataSync() as Float32Array);
      } finally {
        trainer.dispose();
        model.dispose();
        tf.dispose(batch);
      }
    };
    const single = await run([l2Penalty()]);
    const split = await run([dataParallel({ setupModule: penaltyFixture }), l2Penalty()]);
    const unpenalized = await run([]);
    single.forEach((w, i) => expect(maxRelativeDifference(split[i]!, w)).to.be.below(TOLERANCE));
    // The penalty moves the weights far beyond the tolerance: a penalty applied to one part only would show.
    expect(Math.max(...single.map((w, i) => maxRelativeDifference(unpenalized[i]!, w)))).to.be.above(100 * TOLERANCE);
  });

  for (const [name, optimizer] of [
    ['sgd with momentum', () => sgd({ lr: 0.1, momentum: 0.9 })],
    ['adam', () => adam({ lr: 0.01 })],
  ] as const) {
    it(`several steps with ${name} train as one thread does (losses and weights)`, async () => {
      const { losses, weights } = await trainBoth(() => smallCnn(), optimizer, 5);
      expect(maxRelativeDifference(losses[1]!, losses[0]!)).to.be.below(1e-4);
      weights[0]!.forEach((w, i) => expect(maxRelativeDifference(weights[1]![i]!, w)).to.be.below(1e-4));
    });
  }

  it("combining a worker's gradients makes one tensor per weight (its values copied onto the heap receive the sum in place)", async () => {
    /** Tensors the data-parallel Backprop keeps alive within the step beyond one thread's, for a model with `layers` dense layers (2 weights each). */
    const extraTensors = async (layers: number): Promise<number> => {
      const model = tf.sequential({ layers: Array.from({ length: layers }, (_, l) => tf.layers.dense({ ...(l === 0 ? { inputShape: [6] } : {}), units: l === layers - 1 ? 3 : 8, kernelInitializer: tf.initializers.glorotUniform({ seed: l }) })) });
      const batch = batchFor(model, 16);
      const trainer = trainerFor(model, [dataParallel()]);
      try {
        await trainer.setup();
        const made = (backprop: Backprop) =>
          tf.tidy(() => {
            const before = tf.memory().numTensors;
            computed(trainer, batch, backprop, false);
            return tf.memory().numTensors - before;
          });
        return made(trainer.resolve(Tokens.Backprop)) - made(new PlannedBackprop());
      } finally {
        trainer.dispose();
        model.dispose();
        tf.dispose(batch);
      }
    };
    // Two more weights (a layer), the same step otherwise: what the combination makes per weight.
    expect(((await extraTensors(3)) - (await extraTensors(2))) / 2).to.equal(1);
  });

  it('leaks no tensor on the main thread, and describe() names it', async () => {
    const model = smallMlp();
    const batch = batchFor(model, 20);
    const trainer = trainerFor(model, [dataParallel()], sgd({ lr: 0.1, momentum: 0.9 }));
    try {
      await trainer.setup();
      const step = (s: number) => trainer.trainStep(batch, { epoch: 0, batch: s, step: s }).loss.dispose();
      step(0);
      const before = tf.memory().numTensors;
      for (let s = 1; s < 4; s++) step(s);
      expect(tf.memory().numTensors).to.equal(before);
      const d = trainer.describe({ print: false });
      expect(d.backprop?.provider).to.equal('data-parallel');
      expect(d.backprop?.runs).to.match(/^data parallel, 2 replicas \(/);
      // The main thread's part runs core's planned backprop: the plan is printed, with where it holds.
      expect(d.backprop?.realisesMemoryPlan).to.equal(true);
      expect(describeTrainer(d)).to.match(/^memory plan \(realised on the main thread's part of each batch \(the replica workers store all their activations\)\):$/m);
    } finally {
      trainer.dispose();
      model.dispose();
      tf.dispose(batch);
    }
  });

  it("fit's loss and metrics are the whole batch's (the same history as one thread)", async () => {
    const history: Record<string, number[]>[] = [];
    for (const plugins of [[], [dataParallel()]]) {
      const model = smallMlp();
      const batch = batchFor(model, 40);
      const trainer = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.1 }), metrics: ['accuracy'], logger: new SilentLogger(), plugins });
      try {
        history.push((await trainer.fit(batch.x, batch.y, { epochs: 2, batchSize: 16, shuffle: false, verbose: 0 })).history as Record<string, number[]>);
      } finally {
        trainer.dispose();
        model.dispose();
        tf.dispose(batch);
      }
    }
    expect(maxRelativeDifference(history[1]!.loss!, history[0]!.loss!)).to.be.below(1e-4);
    expect(history[1]!.acc).to.deep.equal(history[0]!.acc);
  });
});
