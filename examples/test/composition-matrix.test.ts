import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { modelVariables, sgd, SilentLogger, Stage, Trainer, type TapfitPlugin, type TensorData, type TrainerDescription } from '@tapfit/core';
import { adaptiveBrakingPlugin, brakesPlugin, delayedGradients } from '@tapfit/plugin-brakes';
import type { lora } from '@tapfit/plugin-lora';
import { pipeline } from '@tapfit/plugin-pipeline';
import { expect } from 'chai';
import { BATCH, batchNormMlp, composition, PACKAGES, plainMlp, type Composition, type PackageKey } from '../src/composition';
import { tmpDir } from './helpers';

/**
 * Every pair of the five plugin packages and core's dataParallel on one trainer, and the largest sets that make
 * sense: registration, describe(), 20 steps, checkpoint and resume (resume then train
 * equals training straight through, bit for bit), no tensor growth. Pairs that cannot
 * compose fail at registration with the reason they declare. docs/composition.md
 * tabulates the same outcomes; the last test holds the two to each other.
 */

/** What each pair does: compose, or fail at registration with this declared reason. */
const CONFLICTS: Partial<Record<string, RegExp>> = {
  'online-norm+revsilo': /plugins 'online-norm' and 'revsilo' cannot be used together: online-norm swaps a tfjs-layers model's BatchNormalization layers .* the rebuild would drop the segments' inverses\. Remove one of them\.$/,
  'revsilo+pipeline': /plugins 'pipeline' and 'revsilo' cannot be used together: the pipeline's Backprop .* cannot realise a memory plan: revsilo's 'invert' segments would keep all their activations .*\. Remove one of them\.$/,
  'lora+data-parallel': /plugins 'data-parallel' and 'lora' cannot be used together: LoRA swaps in adapted layers the replica workers cannot rebuild.*\. Remove one of them\.$/,
  'online-norm+data-parallel': /plugins 'data-parallel' and 'online-norm' cannot be used together: OnlineNorm's layers normalise with statistics carried from batch to batch.*\. Remove one of them\.$/,
  'revsilo+data-parallel': /plugins 'data-parallel' and 'revsilo' cannot be used together: revsilo's reversible segments are hand-written.*\. Remove one of them\.$/,
  // Both provide the Backprop: core's one-provider rule answers first, naming the plugins in the order given.
  'pipeline+data-parallel': /^plugins '(pipeline|data-parallel)' and '(pipeline|data-parallel)' both replace the service 'Backprop'; only one can\. Remove one of them\.$/,
};

const pairs: [PackageKey, PackageKey][] = PACKAGES.flatMap((a, i) => PACKAGES.slice(i + 1).map((b): [PackageKey, PackageKey] => [a, b]));
const key = (set: readonly PackageKey[]) => set.join('+');

/** The largest sets that compose: every package but revsilo on the MLP; revsilo with LoRA and Adaptive Braking under delay on RevBiFPN. */
const LARGEST: PackageKey[][] = [
  ['online-norm', 'lora', 'brakes', 'pipeline'],
  ['revsilo', 'lora', 'brakes'],
];

const STEPS = 20;
const CUT = 7; // mid-epoch: the resume continues inside epoch 1

function stopAt(step: number, holder: { t?: Trainer }): TapfitPlugin {
  return { name: 'matrix-stop', core: '*', apply: ({ hooks, trainer }) => hooks.batchEnd.tap({ stage: Stage.LAST }, () => void (trainer.step >= step && holder.t!.stop())) };
}

function disposeRun(t: Trainer, data: TensorData, model: { dispose?(): void }): void {
  t.dispose();
  data.dispose();
  model.dispose?.();
}

/** Every variable's values, in model order (names differ between two builds: tfjs numbers them). */
function values(t: Trainer): Float32Array[] {
  return modelVariables(t.model).map((v) => Float32Array.from(v.dataSync() as Float32Array));
}

function predictions(t: Trainer, data: TensorData): Float32Array {
  const probe = tf.slice(data.x, 0, 8);
  const y = t.predict(probe);
  const out = Float32Array.from(y.dataSync() as Float32Array);
  tf.dispose([probe, y]);
  return out;
}

function expectSame(a: Float32Array[], b: Float32Array[], what: string): void {
  expect(b.length, `${what}: variable count`).to.equal(a.length);
  a.forEach((x, i) => expect(Buffer.from(b[i].buffer).equals(Buffer.from(x.buffer)), `${what}: variable ${i} differs`).to.equal(true));
}

/** Registration, describe, 20 steps, resume at step 7 equals straight through, no growth. */
async function checkComposes(set: readonly PackageKey[]): Promise<void> {
  const c: Composition = composition(set);
  // Straight through, with the leak check between the two epochs.
  const options = c.options();
  const straight = new Trainer(options);
  const data = c.data();
  await straight.setup();
  const d = straight.describe({ print: false });
  const names = straight.plugins.map((p) => p.name);
  expect(d.plugins).to.deep.equal(names);
  await straight.fit(data, { epochs: 1, batchSize: BATCH });
  const before = tf.memory().numTensors;
  await straight.fit(data, { epochs: 1, batchSize: BATCH }); // one epoch more, as a second model.fit
  expect(tf.memory().numTensors - before, 'tensors leaked over the second 10 steps').to.equal(0);
  expect(straight.step + straight.skipped).to.equal(STEPS);
  expectEachDoesItsJob(set, straight, d);

  // Cut at step 7, save, resume into fresh parts, finish.
  const holder: { t?: Trainer } = {};
  const firstOptions = c.options();
  const first = (holder.t = new Trainer({ ...firstOptions, plugins: [...firstOptions.plugins!, stopAt(CUT, holder)] }));
  const firstData = c.data();
  await first.fit(firstData, { epochs: 2, batchSize: BATCH });
  const dir = tmpDir('tapfit-matrix-');
  await first.save(dir);
  const resumedOptions = c.options();
  const resumed = await Trainer.resume(dir, resumedOptions);
  const resumedData = c.data();
  await resumed.fit(resumedData, { epochs: 2, batchSize: BATCH });
  expect(resumed.step + resumed.skipped).to.equal(STEPS);
  expect(resumed.step).to.equal(straight.step);
  expectSame(values(straight), values(resumed), 'resumed vs straight');
  expectSame([predictions(straight, data)], [predictions(resumed, resumedData)], 'predictions');
  fs.rmSync(dir, { recursive: true, force: true });
  disposeRun(straight, data, options.model);
  disposeRun(first, firstData, firstOptions.model);
  disposeRun(resumed, resumedData, resumedOptions.model);
}

type LoraPlugin = ReturnType<typeof lora>;
type PipelinePlugin = ReturnType<typeof pipeline>;

/** Composed, each plugin still does what it does alone (a composition that runs but drops one is no composition). */
function expectEachDoesItsJob(set: readonly PackageKey[], t: Trainer, d: TrainerDescription): void {
  const plugin = <T extends TapfitPlugin>(name: string) => t.plugins.find((p) => p.name === name) as T;
  const trained = Object.values(t.variables).reduce((n, v) => n + v.size, 0);
  if (set.includes('lora')) {
    // The handle is the model that trained, and only the adapters and the head trained.
    const p = plugin<LoraPlugin>('lora');
    if ('layers' in p.handle) expect(p.lora.model, 'plugin.lora is the trained model').to.equal(t.model.layersModel);
    else expect(p.segmentLora.model.segments, 'plugin.segmentLora is the trained model').to.equal(t.model.segments);
    expect(trained, 'trainable parameters are the adapters and the head').to.equal(p.handle.trainableParams);
  }
  if (set.includes('online-norm')) {
    // No BatchNorm left; each OnlineNorm layer advanced once per step (a recompute replays, it does not advance).
    const layers = t.model.layersModel!.layers.map((l) => l.getClassName());
    expect(layers).not.to.include('BatchNormalization');
    expect(layers.filter((c) => c === 'OnlineNorm')).to.have.length(2);
    const calls = (plugin<TapfitPlugin>('online-norm').saveState!().json as { calls: { training: number }[] }).calls;
    expect(calls.map((c) => c.training)).to.deep.equal([STEPS, STEPS]);
  }
  if (set.includes('brakes')) {
    expect(t.optimizerState!.momentum, "Adaptive Braking's state replaces momentum's").to.have.property('scale');
    expect(t.skipped, 'the delay warm-up').to.equal(set.includes('pipeline') ? 0 : 2);
  }
  if (set.includes('revsilo')) {
    const inverted = d.memoryPlan!.segments.filter((s) => s.policy === 'invert').map((s) => s.name);
    expect(inverted).to.deep.equal(t.model.segments.filter((s) => s.inverse).map((s) => s.name));
    expect(inverted.length).to.be.greaterThan(0);
  }
  if (set.includes('pipeline')) expect(plugin<PipelinePlugin>('pipeline').stages.map((s) => s.delay)).to.deep.equal([2, 0]);
  if (set.includes('data-parallel')) expect(d.backprop?.provider, "dataParallel's Backprop runs the steps").to.equal('data-parallel');
}

describe('composition matrix: the five plugins and dataParallel on one trainer', function () {
  this.timeout(60_000);
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const [a, b] of pairs) {
    const conflict = CONFLICTS[key([a, b])];
    if (conflict) {
      it(`${a} + ${b}: refused at registration, with the declared reason, before anything runs`, () => {
        for (const set of [[a, b], [b, a]] as PackageKey[][]) {
          const options = composition(set).options();
          let err: (Error & { code?: string }) | undefined;
          try {
            new Trainer(options);
          } catch (e) {
            err = e as Error;
          }
          (options.model as { dispose(): void }).dispose();
          expect(err?.code, key(set)).to.equal('TAPFIT_E_PLUGIN_CONFLICTS');
          expect(err?.message).to.match(conflict).and.match(/Remove one of them\.$/);
        }
      });
    } else {
      it(`${a} + ${b}: registers, describes, trains 20 steps, resumes bit for bit, no leaks`, () => checkComposes([a, b]));
    }
  }

  for (const set of LARGEST) {
    it(`all of ${set.join(', ')}: registers, describes, trains 20 steps, resumes bit for bit, no leaks`, () => checkComposes(set));
  }

  it("data-parallel + brakes: Adaptive Braking under the gradient delay trains as it does on one thread (the delayed gradients are the whole batch's)", async () => {
    const run = async (set: PackageKey[]) => {
      const c = composition(set);
      const options = c.options();
      const t = new Trainer({ ...options, model: plainMlp() });
      (options.model as tf.LayersModel).dispose();
      const data = c.data();
      await t.fit(data, { epochs: 2, batchSize: BATCH });
      const out = { weights: values(t), skipped: t.skipped };
      disposeRun(t, data, t.model.layersModel!);
      return out;
    };
    const split = await run(['brakes', 'data-parallel']);
    const oneThread = await run(['brakes']);
    expect(split.skipped, 'the delay warm-up').to.equal(oneThread.skipped).and.equal(2);
    oneThread.weights.forEach((w, i) => {
      const worst = w.reduce((m, v, j) => Math.max(m, Math.abs(split.weights[i]![j]! - v) / Math.max(1, Math.abs(v))), 0);
      expect(worst, `variable ${i}`).to.be.below(1e-5); // float sums in another order
    });
  });

  describe('conflicts that depend on options, each with its reason', () => {
    const register = (plugins: TapfitPlugin[]) => () => new Trainer({ model: batchNormMlp(), loss: 'softmaxCrossEntropy', optimizer: sgd({ lr: 0.05, momentum: 0.9 }), plugins, logger: new SilentLogger() });
    const pipe = (compensation: 'none' | 'sc' = 'none') => pipeline({ boundaries: ['d2'], compensation });

    it('a second gradient delay on top of the pipeline: delayedGradients, or brakes with a delay', () => {
      expect(register([delayedGradients({ delay: 2 }), pipe()])).to.throw(/plugins 'pipeline' and 'delayed-gradients' cannot be used together: the pipeline already delays/);
      expect(register([pipe(), brakesPlugin({ delay: 2 })])).to.throw(/plugins 'brakes' and 'pipeline' cannot be used together: the pipeline already delays each stage's gradients; brakes' delay of 2/);
    });

    it("Spike Compensation and Adaptive Braking: refused at registration (adaptive-braking), at setup (brakes), before any step", async () => {
      expect(register([pipe('sc'), adaptiveBrakingPlugin()])).to.throw(/plugins 'pipeline' and 'adaptive-braking' cannot be used together: both replace the update chain's momentum member/);
      const t = register([brakesPlugin({ rho: 1 }), pipe('sc')])();
      let err: Error | undefined;
      await t.setup().catch((e: Error) => (err = e));
      expect(err?.message).to.match(/plugin 'brakes' failed in hook 'stepTransforms'/);
      expect(String((err?.cause as Error | undefined)?.message)).to.match(/already a delay compensation \('spike', e\.g\. the pipeline's Spike Compensation\)/);
      expect(t.step).to.equal(0);
      t.dispose();
      // brakes with its own momentum reads nothing from the member, and is refused all the same.
      const withMomentum = register([brakesPlugin({ rho: 1, momentum: 0.9 }), pipe('sc')])();
      const refused = await withMomentum.setup().then(
        () => undefined,
        (e: Error) => e,
      );
      expect(String((refused?.cause as Error | undefined)?.message)).to.match(/already a delay compensation \('spike'/);
      withMomentum.dispose();
    });
  });

  it('docs/composition.md tabulates exactly these outcomes', () => {
    const doc = fs.readFileSync(path.join(__dirname, '..', '..', '..', 'docs/composition.md'), 'utf8');
    const rows = doc.split('\n').filter((l) => /^\| \*\*[a-z-]+\*\* \|/.test(l));
    expect(rows.map((r) => r.split('|')[1].trim().replace(/\*/g, ''))).to.deep.equal([...PACKAGES]);
    for (const [i, row] of rows.entries()) {
      const cells = row.split('|').slice(2, 2 + PACKAGES.length).map((c) => c.trim());
      cells.forEach((cell, j) => {
        if (i === j) return expect(cell).to.equal('');
        const pair = i < j ? key([PACKAGES[i], PACKAGES[j]]) : key([PACKAGES[j], PACKAGES[i]]);
        expect(cell.split(' ')[0], `${PACKAGES[i]} x ${PACKAGES[j]}`).to.equal(CONFLICTS[pair] ? 'conflict' : 'composes');
      });
    }
  });
});
