import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { chain, sgd, SilentLogger, stateTensors, Trainer, transformStep, scaleByLearningRate, type TransformState } from '@tapfit/core';
import { adaptiveBraking, GradientDelay, tapfitPlugin } from '../src';
import { quadraticSetup, recorder, useBackend } from './helpers';
import { amplitude, refDelayedQuadratic } from './reference';

// docs/techniques.md §4.5 item 6: on L = h w^2 / 2 with delay D and a learning rate at which
// delayed SGDM oscillates with growing amplitude, SGDM + AB's amplitude decays.
// h = 1, m = 0.9, D = 8, lr = 0.02: (found by scanning lr in the float64 model; SGDM is
// stable at this lr without delay: the delay alone makes it diverge.)
const setting = { h: 1, w0: 1, delay: 8, lr: 0.02, momentum: 0.9, batches: 400 };
const early = [100, 200] as const;
const late = [300, 400] as const;

/** The same experiment with tf: GradientDelay + chain(adaptiveBraking, lr), gradient by tf.grad. */
function tfDelayedQuadratic(rho: number, batches: number): number[] {
  const w = tf.variable(tf.scalar(setting.w0));
  const params = { w };
  const t = chain(adaptiveBraking({ momentum: setting.momentum, rho }), scaleByLearningRate(setting.lr));
  let state: TransformState = tf.tidy(() => t.init(params));
  const queue = new GradientDelay(setting.delay);
  const grad = tf.grad((x: tf.Tensor) => tf.mul(tf.square(x), setting.h / 2));
  const out: number[] = [];
  for (let b = 0; b < batches; b++) {
    const g = queue.push({ w: tf.tidy(() => grad(w)) });
    if (g) {
      state = transformStep(t, params, g, state, { step: b - setting.delay });
      tf.dispose(Object.values(g));
    }
    out.push(w.dataSync()[0]);
  }
  tf.dispose([...stateTensors(state), w]);
  queue.dispose();
  return out;
}

describe('delayed 1-D quadratic (docs/techniques.md §4.5 item 6)', () => {
  useBackend('cpu');

  it('float64: delayed SGDM oscillates with growing amplitude, SGDM + AB decays', () => {
    const sgdm = refDelayedQuadratic({ ...setting, rho: 0 });
    const ab = refDelayedQuadratic({ ...setting, rho: 2 });
    expect(amplitude(sgdm, ...late)).to.be.greaterThan(10 * amplitude(sgdm, ...early));
    expect(amplitude(sgdm, ...late)).to.be.greaterThan(setting.w0 * 10);
    expect(amplitude(ab, ...late)).to.be.lessThan(0.1 * amplitude(ab, ...early));
    expect(amplitude(ab, ...late)).to.be.lessThan(0.01 * setting.w0);
    // it oscillates (changes sign) rather than creeping: the braking is doing the work
    const signChanges = sgdm.slice(0, 200).filter((x, i) => i > 0 && Math.sign(x) !== Math.sign(sgdm[i - 1])).length;
    expect(signChanges).to.be.greaterThan(4);
    // without delay, the same lr is stable for SGDM
    expect(amplitude(refDelayedQuadratic({ ...setting, delay: 0, rho: 0 }), ...late)).to.be.lessThan(1e-3);
  });

  it('the tf transform reproduces both float64 trajectories', () => {
    for (const rho of [0, 2]) {
      const ref = refDelayedQuadratic({ ...setting, rho });
      const tfRun = tfDelayedQuadratic(rho, setting.batches);
      tfRun.forEach((w, b) => expect(Math.abs(w - ref[b]), `rho ${rho} batch ${b}: ${w} vs ${ref[b]}`).to.be.at.most(1e-4 * Math.max(1, Math.abs(ref[b]))));
      if (rho === 0) expect(amplitude(tfRun, ...late)).to.be.greaterThan(10 * amplitude(tfRun, ...early));
      else expect(amplitude(tfRun, ...late)).to.be.lessThan(0.1 * amplitude(tfRun, ...early));
    }
  });

  it('through the Trainer with tapfitPlugin({ delay, rho }): same trajectories, same verdict', async () => {
    const run = async (braking: boolean) => {
      const q = quadraticSetup({ h: setting.h, w0: setting.w0, batches: setting.batches });
      const rec = recorder(q.weight);
      const plugin = braking ? tapfitPlugin({ delay: setting.delay, rho: 2 }) : tapfitPlugin({ delay: setting.delay, braking });
      const t = new Trainer({ model: q.model, loss: q.loss, optimizer: sgd({ lr: setting.lr, momentum: setting.momentum }), plugins: [plugin, rec], logger: new SilentLogger(), nonFinite: 'off' });
      await t.fit(q.data, { epochs: 1, batchSize: 1 });
      t.dispose();
      plugin.dispose();
      q.data.dispose();
      return rec.values;
    };
    const plain = await run(false);
    const braked = await run(true);
    const refPlain = refDelayedQuadratic({ ...setting, rho: 0 });
    const refBraked = refDelayedQuadratic({ ...setting, rho: 2 });
    plain.forEach((w, b) => expect(Math.abs(w - refPlain[b])).to.be.at.most(1e-4 * Math.max(1, Math.abs(refPlain[b]))));
    braked.forEach((w, b) => expect(Math.abs(w - refBraked[b])).to.be.at.most(1e-4 * Math.max(1, Math.abs(refBraked[b]))));
    expect(amplitude(plain, ...late)).to.be.greaterThan(10 * amplitude(plain, ...early));
    expect(amplitude(braked, ...late)).to.be.lessThan(0.1 * amplitude(braked, ...early));
  });
});
