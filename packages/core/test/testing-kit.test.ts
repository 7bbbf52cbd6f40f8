import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { chain, mapNamed, momentum, scaleByLearningRate, type PluginState, type StepTransform, type TapfitPlugin } from '../src';
import { checkGradients, checkNoLeaks, conformanceChecks, describeConformance, GRADIENT_SCALE_FLOOR, gradientMismatch, largestGradientError, noopPlugin, seededRandom, type BackendRun } from '../src/testing';
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
  };
  return p;
};

describeConformance({ plugin: () => noopPlugin() });
describeConformance({ plugin: halveGrads, twin: () => ({ optimizer: chain(halve, momentum({ momentum: 0.9 }), scaleByLearningRate(0.1)) }), twinTolerance: 0 });
describeConformance({ plugin: gradNormEma });

describe('the conformance suite catches broken plugins', () => {
  useBackend('cpu');
  const run = async (plugin: () => TapfitPlugin, check: string) => {
    const c = conformanceChecks({ plugin }).find((x) => x.name.startsWith(check))!;
    try {
      await c.run();
    } catch (err) {
      return (err as Error).message;
    }
    return 'passed';
  };

  it('a plugin whose name is not kebab-case fails registration', async () => {
    const camel = (): TapfitPlugin => ({ name: 'onlineNorm', core: '*', apply: () => {} });
    expect(await run(camel, 'registers cleanly')).to.match(/the name 'onlineNorm' is not kebab-case/);
    expect(await run(() => ({ ...camel(), name: 'online-norm' }), 'registers cleanly')).to.equal('passed');
  });

  it('a plugin that leaks a tensor per step fails the leak check', async () => {
    const leaky = (): TapfitPlugin => ({ name: 'leaky', core: '*', apply: ({ hooks }) => hooks.backward.tap('leaky', (g) => (tf.keep(tf.scalar(1)), g)) });
    expect(await run(leaky, 'leaks no tensors')).to.match(/leaked over/);
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
