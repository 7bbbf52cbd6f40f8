import * as tf from '@tensorflow/tfjs';
import { noiseKey } from '@tapfit/core';
import { checkGradients, checkNoLeaks } from '@tapfit/core/testing';
import { expect } from 'chai';
import { conv3d, depthToSpace, depthwise3d, dropout, dropPath, Norm, pointwise, spaceToDepth, upsampleBilinear, upsampleConv3d, variableFactory } from '../src';
import { expectAllclose, inference, replay, setBackend, training } from './helpers';

const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

describe('revsilo ops', () => {
  setBackend('cpu');

  describe('3-D convolutions by depth slices (docs/techniques.md §3.2: TF.js has no depthwise 3-D op)', () => {
    for (const stride of [1, 2]) {
      it(`conv3d equals tf.conv3d 'same', stride ${stride}, odd and even depths`, () => {
        for (const d of [4, 5]) {
          const x = rand([2, d, 6, 5, 3], 1);
          const w = rand([3, 3, 3, 3, 4], 2);
          expectAllclose(conv3d(x, w, stride), tf.conv3d(x as tf.Tensor5D, w as tf.Tensor5D, stride, 'same'), 1e-5, 1e-5, `depth ${d}`);
        }
      });
    }

    it('every depthwise method equals a conv3d with the filter on the diagonal, stride 1 and 2', () => {
      const x = rand([2, 6, 5, 4, 3], 3);
      const w = rand([3, 3, 3, 3], 4);
      for (const stride of [1, 2]) {
        const oracle = tf.conv3d(x as tf.Tensor5D, tf.mul(tf.reshape(w, [3, 3, 3, 3, 1]), tf.reshape(tf.eye(3), [1, 1, 1, 3, 3])) as tf.Tensor5D, stride, 'same');
        for (const method of ['slices', 'blockDiagonal', 'perChannel'] as const) expectAllclose(depthwise3d(x, w, stride, method), oracle, 1e-5, 1e-5, `${method}, stride ${stride}`);
      }
    });

    it('the depth-slice depthwise convolution has the right gradients (finite differences)', () => {
      const w = rand([3, 3, 3, 2], 6);
      const r = checkGradients((x) => tf.sum(tf.square(depthwise3d(x, w))), [rand([1, 4, 3, 3, 2], 5)]);
      expect(r.maxRelError).to.be.below(1e-2);
    });

    it('the 2x2x2 stride-2 transposed convolution equals tf.conv3dTranspose with the same kernel', () => {
      const [cin, cout] = [3, 2];
      const x = rand([2, 3, 2, 4, cin], 7);
      const w = rand([cin, 8 * cout], 8);
      // w[ci, ((a * 2 + b) * 2 + c) * cout + co] is the filter's [a, b, c, co, ci].
      const filter = tf.transpose(tf.reshape(w, [cin, 2, 2, 2, cout]), [1, 2, 3, 4, 0]) as tf.Tensor5D;
      const oracle = tf.conv3dTranspose(x as tf.Tensor5D, filter, [2, 6, 4, 8, cout], 2, 'same');
      expectAllclose(upsampleConv3d(x, w), oracle, 1e-5, 1e-5, 'transposed conv');
    });

    it('pointwise equals a 1x1x1 convolution', () => {
      const x = rand([2, 3, 3, 3, 4], 9);
      const w = rand([4, 5], 10);
      expectAllclose(pointwise(x, w), tf.conv3d(x as tf.Tensor5D, tf.reshape(w, [1, 1, 1, 4, 5]) as tf.Tensor5D, 1, 'same'), 1e-5, 1e-5, 'pointwise');
    });
  });

  it('space-to-depth is inverted exactly by depth-to-space, which equals tf.depthToSpace', () => {
    const x = rand([2, 8, 4, 3], 11);
    const y = spaceToDepth(x, 4);
    expect(y.shape).to.deep.equal([2, 2, 1, 48]);
    expect(tf.max(tf.abs(tf.sub(depthToSpace(y, 4), x))).dataSync()[0]).to.equal(0);
    expect(tf.max(tf.abs(tf.sub(depthToSpace(y, 4), tf.depthToSpace(y as tf.Tensor4D, 4)))).dataSync()[0]).to.equal(0);
  });

  it("bilinear upsampling has the right gradient (TF.js's halfPixelCenters gradient is wrong, so it is not used)", () => {
    const r = checkGradients((x) => tf.sum(tf.mul(upsampleBilinear(x, 4), tf.linspace(0, 1, 2 * 8 * 12 * 2).reshape([2, 8, 12, 2]))), [rand([2, 2, 3, 2], 12)]);
    expect(r.maxRelError).to.be.below(1e-2);
  });

  describe('Norm: statistics move once per step and replay exactly (docs/techniques.md §2.5)', () => {
    for (const kind of ['batch', 'instance', 'group'] as const) {
      it(`${kind}: a replayed forward equals the training forward, moves nothing, and has autodiff's gradient`, () => {
        const norm = new Norm('n', { kind, channels: 4, groups: 2 }, variableFactory(`norm_${kind}`));
        const x = rand([3, 5, 5, 4], 13);
        const before = norm.params.map((v) => Float32Array.from(v.dataSync()));
        const y = norm.apply(x, training);
        const afterTraining = norm.params.map((v) => Float32Array.from(v.dataSync()));
        // Replayed on the same input: bit for bit the training output.
        expect(Array.from(norm.apply(x, replay).dataSync())).to.deep.equal(Array.from(y.dataSync()));
        if (kind === 'batch') {
          // On a rebuilt input (off by rounding) it normalises with the original statistics: y + (rebuilt - x) / sqrt(var + eps).
          const e = tf.mul(rand(x.shape, 14), 1e-3);
          const { variance } = tf.moments(x, [0, 1, 2]);
          expectAllclose(norm.apply(tf.add(x, e), replay), tf.add(y, tf.mul(e, tf.rsqrt(tf.add(variance, 1e-3)))), 1e-5, 1e-6, 'replay on a rebuilt input');
        }
        norm.params.forEach((v, i) => expect(Array.from(v.dataSync())).to.deep.equal(Array.from(afterTraining[i])));
        if (kind === 'batch') expect(Array.from(norm.params[2].dataSync())).to.not.deep.equal(Array.from(before[2])); // moving mean moved once
        // The replay's gradient is that of statistics computed from the rebuilt input.
        const dy = rand(x.shape, 15);
        norm.apply(x, training);
        const g = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(norm.apply(a, replay), dy)))([x])[0];
        const fresh = new Norm('m', { kind, channels: 4, groups: 2 }, variableFactory(`norm2_${kind}`));
        const want = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(fresh.apply(a, training), dy)))([x])[0];
        expectAllclose(g, want, 1e-4, 1e-6, 'input gradient');
        norm.dispose();
        fresh.dispose();
      });
    }

    it('batch: inference uses the moving averages (unbiased variance, momentum 0.9)', () => {
      const norm = new Norm('n', { kind: 'batch', channels: 2 }, variableFactory('norm_inf'));
      const x = tf.tensor4d([1, 2, 3, 6, 5, 10, 7, 14], [4, 1, 1, 2]);
      norm.apply(x, training);
      // mean [4, 8], unbiased variance [20/3, 80/3].
      expectAllclose(norm.params[2], [0.4, 0.8], 1e-6, 1e-6, 'moving mean');
      expectAllclose(norm.params[3], [0.9 + 0.1 * (20 / 3), 0.9 + 0.1 * (80 / 3)], 1e-5, 1e-6, 'moving variance');
      const y = norm.apply(x, inference);
      expectAllclose(y.slice([0, 0, 0, 0], [1, 1, 1, 1]).reshape([1]), [(1 - 0.4) / Math.sqrt(0.9 + 2 / 3 + 1e-3)], 1e-5, 1e-6, 'inference output');
      norm.dispose();
    });

    it('keeps nothing more per step (no leak)', async () => {
      const norm = new Norm('n', { kind: 'instance', channels: 4 }, variableFactory('norm_leak'));
      const x = rand([2, 3, 3, 4], 16);
      await checkNoLeaks(() => tf.tidy(() => {
        norm.apply(x, training);
        norm.apply(x, replay);
      }));
      norm.dispose();
    });
  });

  describe('replayed randomness (docs/techniques.md §2.5, RNG replay)', () => {
    it('dropout and stochastic depth draw the same mask in every forward of a batch and a new one for the next batch or another seed', () => {
      const x = tf.ones([8, 6]);
      for (const f of [dropout, dropPath]) {
        const a = f(x, 0.5, 'k', { ...training, step: 3 });
        const b = f(x, 0.5, 'k', { ...replay, step: 3 });
        const c = f(x, 0.5, 'k', { ...training, step: 4 });
        expect(Array.from(a.dataSync())).to.deep.equal(Array.from(b.dataSync()));
        expect(Array.from(a.dataSync())).to.not.deep.equal(Array.from(c.dataSync()));
        expect(Array.from(f(x, 0.5, 'other', { ...training, step: 3 }).dataSync())).to.not.deep.equal(Array.from(a.dataSync()));
        expect(Array.from(f(x, 0.5, 'k', inference).dataSync())).to.deep.equal(Array.from(x.dataSync()));
        expect(new Set(a.dataSync()).size).to.equal(2); // 0 and 1 / (1 - rate)
      }
      // Keyed by the batch and the trainer's seed (ctx.noiseKey), not by the updates applied: under a gradient
      // delay or a skipped step ctx.step stays put while the batches move on.
      for (const f of [dropout, dropPath]) {
        const mask = (seed: number, serial: number) => Array.from(f(x, 0.5, 'k', { ...training, step: 0, noiseKey: noiseKey(seed, serial) }).dataSync());
        expect(mask(1, 1)).to.not.deep.equal(mask(1, 0)); // next batch, no update between
        expect(mask(2, 0)).to.not.deep.equal(mask(1, 0)); // another trainer seed
        expect(mask(1, 0)).to.deep.equal(Array.from(f(x, 0.5, 'k', { ...replay, step: 0, noiseKey: noiseKey(1, 0) }).dataSync()));
      }
      const perSample = dropPath(tf.ones([16, 3, 3, 2]), 0.5, 'k', training).reshape([16, 18]).arraySync() as number[][];
      for (const row of perSample) expect(new Set(row).size).to.equal(1); // one draw per sample
    });
  });
});
