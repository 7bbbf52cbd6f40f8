import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { chain, mapNamed, momentum, scaleByLearningRate, Stage, type PluginState, type StepTransform, type TapfitPlugin } from '../src';
import {
  blobData,
  checkGradients,
  checkNoLeaks,
  conformanceChecks,
  describeConformance,
  GRADIENT_SCALE_FLOOR,
  gradientMismatch,
  largestGradientError,
  noopPlugin,
  recordHostReads,
  seededRandom,
  testTrainer,
  tinyModel,
  type BackendRun,
  type ConformanceCheck,
  type ConformanceSpec,
} from '../src/testing';
import { useBackend } from './fixtures';

/** Halves every gradient (hook form). */
const halveGrads = (): TapfitPlugin => ({
  name: 'halve-grads',
  core: '^0.1.0',
  apply: ({ hooks }) => hooks.backward.tap('halve-grads', (g) => g && mapNamed(g, (x) => tf.mul(x, 0.5))),
});
/** The same as a step transform (functional twin). */
const halve: StepTransform = { name: 'halve', init: () => ({}), update: (u, s) => [mapNamed(u, (x) => tf.mul(x, 0.5)), s] };

/** Keeps an exponential moving average of the loss-free gradient norm: state that must round-trip. */
const gradNormEma = (): TapfitPlugin & { ema?: tf.Tensor } => {
  const p: TapfitPlugin & { ema?: tf.Tensor } = {
    name: 'grad-norm-ema',
    core: '^0.1.0',
    apply: ({ hooks }) =>
      hooks.backward.tap('grad-norm-ema', (g) => {
        const n = tf.sqrt(tf.addN(Object.values(g!).map((x) => tf.sum(tf.square(x)))));
        const next = tf.keep(p.ema ? tf.add(tf.mul(p.ema, 0.9), tf.mul(n, 0.1)) : n);
        p.ema?.dispose();
        p.ema = next;
        // scale the step by 1 / (1 + ema): results depend on the saved state
        return mapNamed(g!, (x) => tf.div(x, tf.add(1, next)));
      }),
    saveState: (): PluginState => ({ tensors: p.ema ? { ema: p.ema } : {} }),
    loadState: (s: PluginState) => {
      p.ema?.dispose();
      p.ema = s.tensors?.ema;
    },
    dispose: () => p.ema?.dispose(),
  };
  return p;
};

/** The README's plugin example (Plugins section), as printed there. */
const readmeExample = (): TapfitPlugin => {
  let sum = tf.zeros([2]);
  return {
    name: 'my-plugin',
    core: '^0.1.0',
    requires: [],
    conflicts: [{ plugin: 'pipeline', reason: 'both replace the Backprop' }],
    provides: [],
    apply({ hooks }) { hooks.backward.tap({ stage: Stage.TRANSFORM }, (g) => g); },
    saveState() { return { json: { seen: 1 }, tensors: { sum } }; },
    checkState() {},
    loadState(state) { sum.dispose(); sum = state.tensors!.sum; },
    dispose() { sum.dispose(); },
  };
};

describeConformance({ plugin: () => noopPlugin() });
describeConformance({ plugin: halveGrads, twin: () => ({ optimizer: chain(halve, momentum({ momentum: 0.9 }), scaleByLearningRate(0.1)) }), twinTolerance: 0 });
describeConformance({ plugin: gradNormEma });
describeConformance({ plugin: readmeExample });

describe('the conformance suite catches broken plugins', () => {
  useBackend('cpu');
  const outcome = async (c: ConformanceCheck) => {
    try {
      await c.run();
    } catch (err) {
      return (err as Error).message;
    }
    return 'passed';
  };
  const run = (plugin: () => TapfitPlugin, check: string) => outcome(conformanceChecks({ plugin }).find((x) => x.name.startsWith(check))!);

  it('a plugin whose name is not kebab-case fails registration', async () => {
    const camel = (): TapfitPlugin => ({ name: 'onlineNorm', core: '*', apply: () => {} });
    expect(await run(camel, 'registers cleanly')).to.match(/the name 'onlineNorm' is not kebab-case/);
    expect(await run(() => ({ ...camel(), name: 'online-norm' }), 'registers cleanly')).to.equal('passed');
  });

  it('a plugin that leaks a tensor per step fails the leak check', async () => {
    const leaky = (): TapfitPlugin => ({ name: 'leaky', core: '*', apply: ({ hooks }) => hooks.backward.tap('leaky', (g) => (tf.keep(tf.scalar(1)), g)) });
    expect(await run(leaky, 'leaks no tensors')).to.match(/live tensors rose from \d+ after step 5 to \d+ after step 6 of one fit/);
  });

  it('a plugin that keeps a tensor per step and frees them only at fitEnd fails the leak check (the count is sampled after every step)', async () => {
    const gradHistory = (): TapfitPlugin => {
      let history: tf.Tensor[] = [];
      return {
        name: 'grad-history',
        core: '*',
        apply: ({ hooks }) => {
          hooks.backward.tap('grad-history', (g) => (history.push(tf.keep(tf.clone(Object.values(g!)[0]))), g));
          hooks.fitEnd.tap('grad-history', () => void (tf.dispose(history), (history = [])));
        },
        dispose: () => tf.dispose(history),
      };
    };
    expect(await run(gradHistory, 'leaks no tensors')).to.match(/live tensors rose from \d+ after step 5 to \d+ after step 6 of one fit: a tensor kept per step grows without bound, even if freed at fitEnd/);
    // State built lazily within the warm-up (three steps' gradients, emptied at fitEnd) is no leak.
    const lastThree = (): TapfitPlugin => {
      let kept: tf.Tensor[] = [];
      return {
        name: 'last-three',
        core: '*',
        apply: ({ hooks }) => {
          hooks.backward.tap('last-three', (g) => {
            kept.push(tf.keep(tf.clone(Object.values(g!)[0])));
            if (kept.length > 3) kept.shift()!.dispose();
            return g;
          });
          hooks.fitEnd.tap('last-three', () => void (tf.dispose(kept), (kept = [])));
        },
        dispose: () => tf.dispose(kept),
      };
    };
    expect(await run(lastThree, 'leaks no tensors')).to.equal('passed');
  });

  it('a plugin without dispose() that holds a tensor per trainer fails the save/resume/dispose check', async () => {
    const noDispose = (): TapfitPlugin => {
      let count: tf.Tensor | undefined;
      return {
        name: 'no-dispose',
        core: '*',
        apply: ({ hooks }) =>
          hooks.backward.tap('no-dispose', (g) => {
            const next = tf.keep(tf.add(count ?? 0, 1));
            count?.dispose();
            count = next;
            return g;
          }),
      };
    };
    const msg = await run(noDispose, 'save, resume and dispose');
    expect(msg).to.match(/a trained trainer left 1 tensor\(s\) after trainer\.dispose\(\): the plugin's dispose\(\) must free every tensor it holds/);
    expect(msg).to.match(/Trainer\.resume, training on and dispose\(\) left 1 tensor\(s\)/);
  });

  it("a saveState() that returns fresh tensors (the README's former example) fails the save/resume/dispose check; the README's example passes", async () => {
    const freshState = (): TapfitPlugin => ({
      name: 'my-plugin',
      core: '^0.1.0',
      apply() {},
      saveState: () => ({ json: { seen: 1 }, tensors: { sum: tf.zeros([2]) } }),
      loadState: (s) => tf.dispose(Object.values(s.tensors ?? {})),
    });
    const msg = await run(freshState, 'save, resume and dispose');
    expect(msg).to.match(/save\(\) left 1 tensor\(s\): saveState\(\) must return tensors the plugin keeps \(the core reads them and never frees them\)/);
    // resume calls saveState() once more, for its undo copy
    expect(msg).to.match(/Trainer\.resume, training on and dispose\(\) left 1 tensor\(s\)/);
    expect(await run(readmeExample, 'save, resume and dispose')).to.equal('passed');
  });

  it('the suite frees what it builds (trainers, models, data): running every check leaves no tensor', async () => {
    const before = tf.memory().numTensors;
    for (const c of conformanceChecks({ plugin: halveGrads, twin: () => ({ optimizer: chain(halve, momentum({ momentum: 0.9 }), scaleByLearningRate(0.1)) }) })) {
      expect(await outcome(c), c.name).to.equal('passed');
    }
    expect(tf.memory().numTensors - before).to.equal(0);
  });

  it("a spec whose model factory leaks (an initial value never freed) does not fail the plugin's save/resume/dispose check", async () => {
    const spec: ConformanceSpec = {
      plugin: () => noopPlugin(),
      trainer: () => {
        tf.ones([1]); // left behind, as `tf.variable(tf.randomNormal(...))` leaves its initial value
        return { model: tinyModel() };
      },
    };
    expect(await outcome(conformanceChecks(spec).find((c) => c.name.startsWith('save, resume and dispose'))!)).to.equal('passed');
  });

  it("testTrainer's dispose() frees the tinyModel it built, so checkNoLeaks around testTrainer + dispose sees only the plugin", async () => {
    const data = blobData(16);
    await checkNoLeaks(async () => {
      const t = testTrainer({ plugins: [noopPlugin()] });
      await t.fit(data, { epochs: 1, batchSize: 8 });
      t.dispose();
    });
    const model = tinyModel();
    testTrainer({ model }).dispose();
    expect(model.getWeights()[0].isDisposed, 'a model passed in stays the caller\'s').to.equal(false);
    model.dispose();
    data.dispose();
  });

  it("a plugin whose requires are met by spec.trainer()'s plugins passes every check; each trainer's model and plugins come from one spec.trainer() call", async () => {
    const mixed: string[] = [];
    const spec: ConformanceSpec = {
      plugin: () => ({ name: 'needs-base', core: '*', requires: ['base'], apply: () => {} }),
      trainer: () => {
        const model = tinyModel();
        const base: TapfitPlugin = { name: 'base', core: '*', apply: ({ trainer }) => void (trainer.model.layersModel !== model && mixed.push('a model and plugins from different spec.trainer() calls')) };
        return { model, plugins: [base] };
      },
    };
    for (const c of conformanceChecks(spec)) expect(await outcome(c), c.name).to.equal('passed');
    expect(mixed).to.deep.equal([]);
  });

  it("an unseeded plugin fails the determinism check, which names seeds (also seed 0, tfjs's 'no seed'); a seeded one passes", async () => {
    const noisy = (seed: (step: number) => number | undefined) => (): TapfitPlugin => ({
      name: 'grad-noise',
      core: '*',
      apply: ({ hooks }) => hooks.backward.tap('grad-noise', (g, info) => g && mapNamed(g, (x) => tf.add(x, tf.randomNormal(x.shape, 0, 0.1, 'float32', seed(info.step))))),
    });
    expect(await run(noisy(() => undefined), 'trains deterministically')).to.match(/two identical runs of the plugin alone give predictions that differ by .*seed every random draw.*a seed of 0, the trainer's default, as none/);
    expect(await run(noisy(() => 0), 'trains deterministically')).to.match(/differ by/);
    expect(await run(noisy((step) => 1 + step), 'trains deterministically')).to.equal('passed');
  });

  it('a plugin whose state is not saved fails the checkpoint round trip', async () => {
    const forgetful = () => {
      const p = gradNormEma();
      delete p.saveState;
      delete p.loadState;
      return p;
    };
    expect(await run(forgetful, 'state round-trips')).to.match(/resumed predictions differ/);
  });

  it('a plugin that keeps its state in its module, not its instance, fails the checkpoint round trip (as a resume in a new process would)', async () => {
    let moduleEma: tf.Tensor | undefined; // one per module, as a top-level `let` in the plugin's file would be
    const moduleState = (): TapfitPlugin => ({
      name: 'module-ema',
      core: '*',
      apply: ({ hooks, trainer }) => {
        hooks.fitStart.tap('module-ema', () => {
          if (trainer.step > 0) return;
          moduleEma?.dispose();
          moduleEma = undefined;
        });
        hooks.backward.tap('module-ema', (g) => {
          const n = tf.sqrt(tf.addN(Object.values(g!).map((x) => tf.sum(tf.square(x)))));
          const next = tf.keep(moduleEma ? tf.add(tf.mul(moduleEma, 0.9), tf.mul(n, 0.1)) : tf.clone(n));
          moduleEma?.dispose();
          moduleEma = next;
          return mapNamed(g!, (x) => tf.div(x, tf.add(1, next)));
        });
      },
    });
    expect(await run(moduleState, 'state round-trips')).to.match(/resumed predictions differ from straight-through ones by [\d.e-]+ \(the saving trainer was disposed/);
    moduleEma?.dispose();
  });

  it('a plugin whose loadState is a no-op fails the checkpoint round trip (its state, not its predictions, differs)', async () => {
    const stepCounter = (): TapfitPlugin => {
      let steps = 0;
      return {
        name: 'step-counter',
        core: '^0.1.0',
        apply: ({ hooks }) => hooks.batchEnd.tap('step-counter', () => void steps++),
        saveState: () => ({ json: { steps } }),
        loadState: () => {},
      };
    };
    expect(await run(stepCounter, 'state round-trips')).to.match(/saveState\(\) right after resume differs from the saved trainer's at step \d+: json \{"steps":0\} instead of \{"steps":\d+\}/);
  });

  it('a plugin whose tensor state is not restored fails the checkpoint round trip', async () => {
    const gradSum = (): TapfitPlugin => {
      let sum: tf.Tensor | undefined;
      return {
        name: 'grad-sum',
        core: '^0.1.0',
        apply: ({ hooks }) =>
          hooks.backward.tap('grad-sum', (g) => {
            const next = tf.keep(tf.add(sum ?? 0, tf.sum(Object.values(g!)[0])));
            sum?.dispose();
            sum = next;
            return g;
          }),
        saveState: (): PluginState => ({ tensors: sum ? { sum } : {} }),
        loadState: (s) => tf.dispose(Object.values(s.tensors ?? {})),
        dispose: () => sum?.dispose(),
      };
    };
    expect(await run(gradSum, 'state round-trips')).to.match(/right after resume differs .*: tensor 'sum' is missing instead of float32\[\] /);
  });

  it("a plugin whose saveState().json JSON would not give back (Keras' best = Infinity, a NaN later on) fails the checkpoint round trip naming the field; a finite sentinel passes", async () => {
    // ReduceLROnPlateau's bookkeeping: the best epoch loss so far, Infinity before the first epoch ends.
    const plateau = (initialBest: number) => (): TapfitPlugin => {
      let best = initialBest;
      return {
        name: 'reduce-lr-on-plateau',
        core: '*',
        apply: ({ hooks }) => hooks.epochEnd.tap('reduce-lr-on-plateau', ({ logs }) => void (best = Math.min(best, logs.loss))),
        saveState: () => ({ json: { best } }),
        loadState: (s) => void (best = (s.json as { best: number }).best),
      };
    };
    expect(await run(plateau(Infinity), 'state round-trips')).to.match(/saving at step \d+ was refused: save: plugin 'reduce-lr-on-plateau' saveState\(\) returned json\.best = Infinity, which JSON stores as null/);
    expect(await run(plateau(Number.MAX_VALUE), 'state round-trips')).to.equal('passed');
    // Lossy only after the kit's save point: found by the check after every step of the straight run.
    const lateNaN = (): TapfitPlugin => {
      let steps = 0;
      return {
        name: 'late-nan',
        core: '*',
        apply: ({ hooks }) => hooks.batchEnd.tap('late-nan', () => void steps++),
        saveState: () => ({ json: { steps, ratio: steps >= 12 ? NaN : steps } }),
        loadState: (s) => void (steps = (s.json as { steps: number }).steps),
      };
    };
    expect(await run(lateNaN, 'state round-trips')).to.match(/after step 12 the plugin's saveState\(\) returned json\.ratio = NaN, which JSON stores as null; a checkpoint saved then is refused/);
  });

  it('a plugin whose twin differs fails the twin check', async () => {
    const c = conformanceChecks({ plugin: halveGrads, twin: () => ({}) }).find((x) => x.name.startsWith('functional twin'))!;
    let msg = 'passed';
    await c.run().catch((e) => (msg = e.message));
    expect(msg).to.match(/predictions differ by/);
  });
});

describe('checkGradients and checkNoLeaks', () => {
  useBackend('cpu');

  it('accepts a correct gradient and rejects a wrong custom one', () => {
    const x = tf.tensor1d([0.3, -0.7, 1.1]);
    const good = (v: tf.Tensor) => tf.sum(tf.mul(tf.sin(v), v)) as tf.Scalar;
    expect(checkGradients(good, [x]).maxRelError).to.be.lessThan(1e-2);
    // d/dv sum(v^2) is 2v; this custom gradient claims 3v.
    const wrong = tf.customGrad(((v: tf.Tensor, save: tf.GradSaveFunc) => {
      save([v]);
      return { value: tf.sum(tf.square(v)), gradFunc: (dy: tf.Tensor, [s]: tf.Tensor[]) => tf.mul(dy, tf.mul(s, 3)) };
    }) as never) as unknown as (v: tf.Tensor) => tf.Scalar;
    expect(() => checkGradients(wrong, [x])).to.throw(/gradient check failed/);
    x.dispose();
  });

  it('detects growth of the live tensor count', async () => {
    await checkNoLeaks(() => tf.tidy(() => tf.ones([3]).sum()).dispose());
    const kept: tf.Tensor[] = [];
    let err = '';
    await checkNoLeaks(() => kept.push(tf.ones([2]))).catch((e) => (err = e.message));
    expect(err).to.match(/1 tensor\(s\) leaked/);
    tf.dispose(kept);
  });
});

describe('recordHostReads', () => {
  useBackend('cpu');

  it('records each read-back once with its size (array() reads through data()), awaits an async run, narrows to the methods given and restores the methods', async () => {
    const proto = tf.Tensor.prototype;
    const methods = [proto.dataSync, proto.data, proto.arraySync, proto.array];
    const [a, b] = [tf.ones([2, 3]), tf.scalar(1)];
    expect(recordHostReads(() => void (a.dataSync(), b.arraySync(), a.add(b).dispose()))).to.deep.equal([6, 1]);
    expect(await recordHostReads(async () => void (await a.array(), await b.data()))).to.deep.equal([6, 1]);
    expect(await recordHostReads(async () => void (await a.data(), b.dataSync()), ['dataSync'])).to.deep.equal([1]);
    expect(() => recordHostReads(() => (a.dataSync(), expect.fail('boom')))).to.throw('boom');
    await recordHostReads(() => Promise.reject(new Error('async boom'))).then(
      () => expect.fail('resolved'),
      (e: Error) => expect(e.message).to.equal('async boom'),
    );
    expect([proto.dataSync, proto.data, proto.arraySync, proto.array], 'the methods after each run').to.deep.equal(methods);
    tf.dispose([a, b]);
  });
});

describe('gradientMismatch and largestGradientError', () => {
  const run = (backend: BackendRun['backend'], grads: number[][], mapped: number[][] | null = grads): BackendRun => ({
    backend,
    firstGradients: grads.map((g) => Float32Array.from(g)),
    firstMappedGradients: mapped && mapped.map((g) => Float32Array.from(g)),
    losses: [1],
    ms: 1,
    leakedTensors: 0,
  });

  it('accepts round-off where the exact gradient is zero: measured against a floor of the step\'s largest gradient', () => {
    // Variable 0 is a beta that a batch norm downstream makes irrelevant: float32 noise on both.
    const cpu = run('cpu', [[1e-9, -2e-9], [0.4, -0.2]]);
    const gpu = run('webgpu', [[8e-9, 3e-9], [0.40000004, -0.2]]);
    expect(gradientMismatch(gpu, cpu, 1e-3)).to.equal(null);
    // |8e-9 - 1e-9| over the floor 0.4 * GRADIENT_SCALE_FLOOR, not over 2e-9.
    expect(largestGradientError(gpu, cpu)).to.be.closeTo(7e-9 / (0.4 * GRADIENT_SCALE_FLOOR), 1e-6);
  });

  it('still finds a wrong gradient, small ones included, before and after the plugins', () => {
    const cpu = run('cpu', [[2e-3, 1e-3], [0.4, -0.2], [1e-6]]);
    // 10 % off on a gradient 200 times smaller than the largest: well above the floor.
    expect(gradientMismatch(run('wasm', [[2.2e-3, 1e-3], [0.4, -0.2], [1e-6]]), cpu, 1e-3)).to.match(/^first-step gradient of variable 0: wasm differs from cpu by 1\.00e-1 relative/);
    // Below the floor, an error of the floor's size is still an error.
    expect(gradientMismatch(run('wasm', [[2e-3, 1e-3], [0.4, -0.2], [5e-4]]), cpu, 1e-3)).to.match(/variable 2: wasm differs from cpu by 1\.25e\+0 relative/);
    expect(gradientMismatch(run('wasm', [[2e-3, 1e-3], [0.4, -0.2], [1e-6]], [[2e-3, 1e-3], [0.5, -0.2], [1e-6]]), cpu, 1e-3)).to.match(/^first-step gradient after the plugins of variable 1/);
    expect(largestGradientError(run('wasm', [[2e-3, 1e-3], [0.4, -0.2], [1e-6]], [[2e-3, 1e-3], [0.5, -0.2], [1e-6]]), cpu)).to.be.closeTo(0.25, 1e-6);
  });
});

describe('seededRandom', () => {
  it('repeats its sequence for a seed, differs across seeds, stays in [0, 1)', () => {
    const take = (seed: number) => Array.from({ length: 1000 }, seededRandom(seed));
    expect(take(5)).to.deep.equal(take(5));
    expect(take(5)).to.not.deep.equal(take(6));
    const xs = take(7);
    expect(Math.min(...xs)).to.be.at.least(0);
    expect(Math.max(...xs)).to.be.below(1);
    expect(xs.reduce((a, b) => a + b, 0) / xs.length).to.be.closeTo(0.5, 0.05);
  });
});
