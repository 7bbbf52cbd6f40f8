// transformStep folds a chain's final scaleByLearningRate into the parameter write
// (p + (-lr) u in one pass): the same parameters bit for bit as scaling and then adding,
// one kernel fewer per parameter, and only ever for the chain's last member.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { selectBackend } from '../../src';
import { adam, applyUpdates, chain, clipByGlobalNorm, momentum, scaleByLearningRate, sgd, stateTensors, transformStep, type StepTransform, type TransformState } from '../../src/transforms';

const SIZES = { w: [40, 30], b: [30], s: [] as number[] };

function params(): Record<string, tf.Variable> {
  return Object.fromEntries(Object.entries(SIZES).map(([k, shape], i) => [k, tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, 1, 'float32', 11 + i)))]));
}

/** A gradient that changes with the parameters (so trajectories can drift apart). */
const gradient = (p: Record<string, tf.Variable>) => tf.tidy(() => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, tf.add(tf.mul(tf.sin(v), 0.7), tf.mul(v, v))])));

/** `steps` steps through transformStep (folded), or update-then-applyUpdates with no fold (the plain form). */
function run(t: StepTransform, steps: number, folded: boolean): number[][] {
  const p = params();
  let state = t.init(p) as TransformState;
  for (let step = 0; step < steps; step++) {
    const g = gradient(p);
    if (folded) state = transformStep(t, p, g, state, { step });
    else {
      const old = state;
      state = tf.tidy(() => {
        const [u, next] = t.update(g, state, p, { step });
        applyUpdates(p, u);
        return next;
      });
      stateTensors(state).forEach((x) => tf.keep(x));
      const kept = new Set(stateTensors(state));
      tf.dispose(stateTensors(old).filter((x) => !kept.has(x)));
    }
    tf.dispose(Object.values(g));
  }
  const out = Object.values(p).map((v) => Array.from(v.dataSync()));
  tf.dispose([...Object.values(p), ...stateTensors(state)]);
  return out;
}

/** A transform that wraps another, hands it the context it got (as a user's wrapper might) and shifts its output. */
function forwarding(inner: StepTransform): StepTransform {
  return {
    name: 'forwarding',
    init: (p) => ({ inner: inner.init(p) }),
    update: (u, s, p, ctx) => {
      const [out, next] = inner.update(u, s.inner as TransformState, p, ctx);
      return [Object.fromEntries(Object.entries(out).map(([k, x]) => [k, tf.add(x, 1e-3)])), { inner: next }];
    },
  };
}

const chains: Array<[string, () => StepTransform]> = [
  ['sgd with momentum', () => sgd({ lr: 0.05, momentum: 0.9 })],
  ['sgd nested in a chain, with weight decay and Nesterov', () => chain('update', sgd({ lr: 0.03, momentum: 0.8, nesterov: true, weightDecay: 0.01 }))],
  ['adam with a schedule', () => adam({ lr: (k) => 0.01 / (1 + k) })],
  ['scale before a clip (not folded: not last)', () => chain(momentum({ momentum: 0.5 }), scaleByLearningRate(0.1), clipByGlobalNorm(0.5))],
  ['a wrapper that forwards its context to a scale (not folded: not the target)', () => chain(momentum({ momentum: 0.5 }), forwarding(scaleByLearningRate(0.2)))],
];

for (const backend of ['cpu', 'wasm']) {
  describe(`transformStep folds a final learning-rate scale into the parameter write (${backend})`, () => {
    before(async () => {
      tf.env().set('PROD', true);
      if (backend === 'wasm') await selectBackend('wasm', { log: false });
      await tf.setBackend(backend);
    });

    for (const [label, make] of chains) {
      it(`${label}: the same parameters bit for bit as scaling, then adding, over 6 steps; no tensor leaks`, () => {
        const before = tf.memory().numTensors;
        const plain = run(make(), 6, false);
        const folded = run(make(), 6, true);
        expect(tf.memory().numTensors).to.equal(before);
        folded.forEach((w, i) => expect(w, `parameter ${i}`).to.deep.equal(plain[i]));
        const start = params();
        expect(plain[0][0]).to.not.equal(start.w.dataSync()[0]); // the parameters moved
        tf.dispose(Object.values(start));
      });
    }

    it(`sgd with momentum: ${backend === 'wasm' ? 'one kernel fewer per parameter (the write is one fused kernel, no separate multiply)' : 'the same kernels (cpu has no fused kernel)'}`, async () => {
      const p = params();
      const t: StepTransform = sgd({ lr: 0.05, momentum: 0.9 });
      let state = t.init(p);
      const g = gradient(p);
      // tf.profile hands back one shared record: read each before the next profile.
      const a = (await tf.profile(() => void (state = transformStep(t, p, g, state, { step: 0 })))).kernels.map((k) => k.name);
      const b = (await tf.profile(() => tf.tidy(() => applyUpdates(p, t.update(g, state, p, { step: 1 })[0])))).kernels.map((k) => k.name);
      if (backend === 'wasm') expect(a, 'the velocity and the write, one fused kernel each per parameter').to.deep.equal(Array(6).fill('TapfitScaledSum'));
      expect(a.length, `folded: ${a}; plain: ${b}`).to.equal(b.length - (backend === 'wasm' ? 3 : 0)); // cpu's scaledSum is the same multiply and add
      tf.dispose([...Object.values(p), ...Object.values(g), ...stateTensors(state)]);
    });
  });
}
