import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { chain, momentum, scaleByLearningRate, SCALED_SUM_KERNEL, selectBackend, type NamedTensors } from '@tapfit/core';
import { adaptiveBraking, type AdaptiveBrakingOptions } from '../src';
import { trajectory } from './helpers';

/** The bits of a float32 tensor. */
const bits = (t: tf.Tensor) => Array.from(new Uint32Array(Float32Array.from(t.dataSync()).buffer));

/** One update from velocity v with gradient g and weights w: the new velocity and the alphas used. */
function update(o: AdaptiveBrakingOptions, w: NamedTensors, v: NamedTensors, g: NamedTensors) {
  const ab = adaptiveBraking(o);
  const state = { count: 1, velocity: v, scale: Object.fromEntries(Object.keys(w).map((k) => [k, tf.scalar(1)])) };
  const [, next] = ab.update(g, state, w, { step: 1 });
  return next;
}

// Mocha loads this file last: selectBackend installs core's wasm kernels (the fused updates) process-wide.
for (const backend of ['cpu', 'wasm'] as const) {
  describe(`adaptiveBraking's velocity update (${backend})`, () => {
    before(async () => {
      await selectBackend(backend, { log: false });
    });
    after(async () => {
      await selectBackend('cpu', { log: false });
    });

    it('is bit-identical to m v + alpha g written as tf.add(tf.mul(v, m), tf.mul(g, alpha)), with and without weight decay', () => {
      const m = 0.9;
      for (const o of [
        { rho: 1.5 },
        { rho: 0.7, granularity: 'global' as const },
        { rho: 1.5, weightDecay: 0.01, applyToWeightDecay: true },
        { rho: 1.5, weightDecay: 0.01, applyToWeightDecay: false },
      ]) {
        tf.tidy(() => {
          const shapes: Record<string, number[]> = { a: [64, 33], b: [7] };
          const draw = (seed: number, sd: number) => Object.fromEntries(Object.entries(shapes).map(([k, s], i) => [k, tf.randomNormal(s, 0, sd, 'float32', seed + i)]));
          const w = draw(1, 1);
          const v = draw(10, 0.05);
          const g = draw(20, 0.05);
          const next = update({ momentum: m, ...o }, w, v, g);
          for (const key of Object.keys(shapes)) {
            const decay = tf.mul(w[key], o.weightDecay ?? 0);
            const gk = o.weightDecay && o.applyToWeightDecay ? tf.add(g[key], decay) : g[key];
            let old = tf.add(tf.mul(v[key], m), tf.mul(gk, next.scale[key]));
            if (o.weightDecay && !o.applyToWeightDecay) old = tf.add(old, decay);
            expect(bits(next.velocity[key]), `${JSON.stringify(o)} '${key}'`).to.deep.equal(bits(old));
          }
        });
      }
    });

    it('rho = 0 gives the same weights as core momentum(), bit for bit, step for step', () => {
      const plain = trajectory(chain(momentum({ momentum: 0.9 }), scaleByLearningRate(0.05)), 40);
      const braked = trajectory(chain(adaptiveBraking({ momentum: 0.9, rho: 0 }), scaleByLearningRate(0.05)), 40);
      expect(braked).to.deep.equal(plain);
    });

    if (backend === 'wasm') {
      it("runs as core's fused scaledSum, as momentum() does: 2 kernels over each parameter, not 3", async () => {
        expect(tf.getKernel(SCALED_SUM_KERNEL, 'wasm'), 'core registers the fused kernel on wasm').to.not.equal(undefined);
        const shape = [64, 33];
        const w = { a: tf.zeros(shape) };
        const v = { a: tf.randomNormal(shape, 0, 0.05, 'float32', 1) };
        const g = { a: tf.randomNormal(shape, 0, 0.05, 'float32', 2) };
        const profile = await tf.profile(() => tf.tidy(() => void update({ momentum: 0.9, rho: 1.5 }, w, v, g)));
        // Parameter-sized outputs: the cosine's g v, g^2, v^2, then alpha g and m v + (alpha g).
        const full = profile.kernels.filter((k) => tf.util.arraysEqual(k.outputShapes[0] as number[], shape)).map((k) => k.name).sort();
        expect(full).to.deep.equal(['Multiply', 'Multiply', 'Square', 'Square', SCALED_SUM_KERNEL]);
        tf.dispose([w.a, v.a, g.a]);
      });

      it('stores a subnormal velocity as zero, as momentum() does on wasm', () => {
        tf.tidy(() => {
          const tiny = 1.2e-38; // normal; 0.9 of it is below 2^-126 (1.18e-38)
          const w = { a: tf.zeros([4]) };
          const next = update({ momentum: 0.9, rho: 1.5 }, w, { a: tf.fill([4], tiny) }, { a: tf.zeros([4]) });
          const [plain] = momentum({ momentum: 0.9 }).update({ a: tf.zeros([4]) }, { count: 1, velocity: { a: tf.fill([4], tiny) } }, w, { step: 1 });
          expect(Array.from(next.velocity.a.dataSync())).to.deep.equal([0, 0, 0, 0]);
          expect(bits(next.velocity.a)).to.deep.equal(bits(plain.a));
        });
      });
    }
  });
}
