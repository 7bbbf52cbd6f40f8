import * as tf from '@tensorflow/tfjs';
import { TapfitError, type Segment } from '@tapfit/core';
import { expect } from 'chai';
import {
  coupling,
  fSilo,
  gSilo,
  MBConv,
  revSilo,
  siloBlock,
  spaceToDepthBlock,
  streamBlocks,
  transform,
  variableFactory,
  type StreamConfig,
  type Transform,
} from '../src';
import { expectAllclose, replay, setBackend, training } from './helpers';

const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

/** A small dense transform tanh(x W) on the last axis (arbitrary F or G). */
function dense(name: string, cin: number, cout: number, seed: number): Transform {
  const w = tf.variable(tf.mul(rand([cin, cout], seed), 0.5), true, `${name}_${seed}_${Math.random()}`);
  return transform(name, (x) => tf.tanh(tf.reshape(tf.matMul(tf.reshape(x, [-1, cin]), w), [...x.shape.slice(0, -1), cout])), [w]);
}

/** inverse(forward(x)) = x within rtol 1e-4, atol 1e-6 (docs/techniques.md §2.7 item 1), and backward's rebuilt input too. */
function expectReconstructs(segment: Segment, xs: tf.Tensor[]): tf.Tensor[] {
  const ys = segment.forward(xs, training);
  const back = segment.inverse!(ys, replay);
  expect(back.length).to.equal(xs.length);
  back.forEach((b, k) => expectAllclose(b, xs[k], 1e-4, 1e-6, `${segment.name} inverse, stream ${k}`));
  const dys = ys.map((y, k) => rand(y.shape, 100 + k));
  const vars = segment.params.filter((v) => v.trainable);
  const r = segment.backward!(ys, dys, vars, replay);
  r.xs.forEach((b, k) => expectAllclose(b, xs[k], 1e-4, 1e-6, `${segment.name} backward's rebuilt input, stream ${k}`));
  return ys;
}

/** Segment.backward equals autodiff of forward: input and parameter gradients (docs/techniques.md §2.7 item 2, §3.5 item 2). */
function expectBackwardIsAutodiff(segment: Segment, xs: tf.Tensor[], ctx = training): void {
  const vars = segment.params.filter((v) => v.trainable);
  const ys = segment.forward(xs, ctx);
  const dys = ys.map((y, k) => rand(y.shape, 200 + k));
  const objective = (...inputs: tf.Tensor[]) => tf.addN(segment.forward(inputs, ctx).map((y, k) => tf.sum(tf.mul(y, dys[k])))) as tf.Scalar;
  const dxs = tf.grads(objective)(xs);
  const { grads } = tf.variableGrads(() => objective(...xs), vars);
  segment.forward(xs, ctx); // the step's training forward, which the rebuild replays
  const r = segment.backward!(ys, dys, vars, { ...ctx, recomputing: true });
  r.dxs.forEach((d, k) => expectAllclose(d!, dxs[k], 1e-4, 1e-6, `${segment.name} input gradient ${k}`));
  vars.forEach((v, k) => expectAllclose(r.grads[k]!, grads[v.name], 1e-4, 1e-6, `${segment.name} gradient of ${v.name}`));
}

const streams = (channels: number[]): StreamConfig[] => channels.map((c, i) => ({ channels: c, kernel: 3, pad: i === channels.length - 1 ? 2 : 0, expandRatio: 2, seRatio: 0.25 }));
const pyramid = (batch: number, size: number, channels: number[], seed: number) => channels.map((c, i) => rand([batch, size / 2 ** i, size / 2 ** i, c], seed + i));

describe('revsilo blocks', () => {
  setBackend('cpu');

  describe('RevNet coupling with arbitrary F, G (docs/techniques.md §2.2)', () => {
    it('reconstructs its input and its backward equals autodiff', () => {
      const block = coupling({ name: 'c', f: dense('F', 3, 3, 1), g: dense('G', 3, 3, 2) });
      const x = rand([4, 5, 6], 3);
      expectReconstructs(block, [x]);
      expectBackwardIsAutodiff(block, [x]);
    });

    it('computes y2 = x2 + F(x1), y1 = x1 + G(y2) on the channel halves', () => {
      const f = dense('F', 2, 2, 4);
      const g = dense('G', 2, 2, 5);
      const x = rand([3, 4], 6);
      const [x1, x2] = tf.split(x, 2, 1);
      const y2 = tf.add(x2, f.apply(x1, training));
      const y1 = tf.add(x1, g.apply(y2, training));
      expectAllclose(coupling({ name: 'c', f, g }).forward([x], training)[0], tf.concat([y1, y2], 1), 1e-6, 1e-7, 'coupling');
    });

    it('with F = G = 0 is the identity, and so is its inverse', () => {
      const zero = (x: tf.Tensor) => tf.zerosLike(x);
      const block = coupling({ name: 'zero', f: zero, g: zero });
      const x = rand([2, 3, 3, 8], 7);
      expect(Array.from(block.forward([x], training)[0].dataSync())).to.deep.equal(Array.from(x.dataSync()));
      expect(Array.from(block.inverse([x], replay)[0].dataSync())).to.deep.equal(Array.from(x.dataSync()));
    });

    it('refuses an odd channel count, naming the segment and the fix', () => {
      const block = coupling({ name: 'odd-block', f: (x) => x, g: (x) => x });
      expect(() => block.forward([rand([2, 5], 8)], training)).to.throw(TapfitError, /segment 'odd-block': stream 0 has 5 channels.*use an even channel count/);
    });

    it('carries streams before the coupled one through unchanged', () => {
      const block = coupling({ name: 'carry', f: dense('F', 2, 2, 9), g: dense('G', 2, 2, 10), carried: 2 });
      const xs = [rand([2, 3], 11), rand([2, 7], 12), rand([2, 4], 13)];
      const ys = expectReconstructs(block, xs);
      expect(Array.from(ys[0].dataSync())).to.deep.equal(Array.from(xs[0].dataSync()));
      expect(Array.from(ys[1].dataSync())).to.deep.equal(Array.from(xs[1].dataSync()));
      expectBackwardIsAutodiff(block, xs);
    });
  });

  describe('reversible MBConv blocks (docs/techniques.md §2.3, §3.2)', () => {
    it('2-D with squeeze-excite and batch norm in training mode: reconstructs, backward equals autodiff', () => {
      const block = streamBlocks({ name: 'mb2d', streams: [{ channels: 8, kernel: 3, expandRatio: 2, seRatio: 0.25 }] }, variableFactory('mb2d'));
      const x = rand([4, 6, 6, 8], 14);
      expectReconstructs(block, [x]);
      expectBackwardIsAutodiff(block, [x]);
    });

    it('3-D (tiny volume), instance and group norm, relu6: reconstructs within 1e-5 of |x|, backward equals autodiff', () => {
      for (const norm of ['instance', 'group'] as const) {
        const block = streamBlocks({ name: `mb3d-${norm}`, dims: 3, norm, groups: 2, activation: 'relu6', streams: [{ channels: 4, kernel: 3, expandRatio: 2, seRatio: 0 }] }, variableFactory('mb3d'));
        const x = rand([2, 4, 4, 4, 4], 15);
        const ys = block.forward([x], training);
        const back = block.inverse(ys, replay)[0];
        const scale = tf.max(tf.abs(x)).dataSync()[0];
        expect(tf.max(tf.abs(tf.sub(back, x))).dataSync()[0] / scale).to.be.below(1e-5); // docs/techniques.md §3.5 item 1
        expectBackwardIsAutodiff(block, [x]);
      }
    });

    it('with stochastic depth: the rebuild replays the masks (docs/techniques.md §2.5)', () => {
      const block = streamBlocks({ name: 'mb-drop', dropPath: 0.5, streams: [{ channels: 8, kernel: 3, expandRatio: 1, seRatio: 0 }] }, variableFactory('mbdrop'));
      const x = rand([8, 4, 4, 8], 16);
      const ctx = { ...training, step: 5 };
      const ys = block.forward([x], ctx);
      expectAllclose(block.inverse(ys, { ...ctx, recomputing: true })[0], x, 1e-4, 1e-6, 'inverse with dropped samples');
      expectBackwardIsAutodiff(block, [x], ctx);
    });

    it('an MBConv transform starts at zero with zeroInitLastGamma, making the block the identity', () => {
      const block = streamBlocks({ name: 'mb-zero', zeroInitLastGamma: true, streams: [{ channels: 4, kernel: 3, expandRatio: 2, seRatio: 0.25 }] }, variableFactory('mbzero'));
      const x = rand([2, 4, 4, 4], 17);
      expect(Array.from(block.forward([x], training)[0].dataSync())).to.deep.equal(Array.from(x.dataSync()));
    });

    it('refuses bad MBConv options, naming the option', () => {
      expect(() => new MBConv('m', { dims: 2, inChannels: 4, outChannels: 4, kernel: 4 }, variableFactory('bad'))).to.throw(TapfitError, /m: the depthwise kernel must be an odd/);
      expect(() => new MBConv('m', { dims: 3, inChannels: 4, outChannels: 4, kernel: 3, upsample: 2 }, variableFactory('bad'))).to.throw(TapfitError, /upsample/);
    });
  });

  describe('F-silo, G-silo and RevSilo over resolution streams (docs/techniques.md §2.3)', () => {
    const f = (i: number, j: number) => dense(`f${i}${j}`, [4, 6, 8, 2][i], [4, 6, 8, 2][j], 20 + 4 * i + j);
    const up = (j: number, i: number) => {
      const d = dense(`g${j}${i}`, [4, 6, 8, 2][j], [4, 6, 8, 2][i], 40 + 4 * j + i);
      return transform(d.name, (x, ctx) => tf.image.resizeNearestNeighbor(d.apply(x, ctx) as tf.Tensor4D, [(x.shape as number[])[1] * 2 ** (j - i), (x.shape as number[])[2] * 2 ** (j - i)]), d.params);
    };
    const down = (i: number, j: number) => {
      const d = f(i, j);
      return transform(d.name, (x, ctx) => tf.avgPool(d.apply(x, ctx) as tf.Tensor4D, 2 ** (j - i), 2 ** (j - i), 'valid'), d.params);
    };

    it('the F pass adds functions of the input streams (never updated ones), and reconstructs', () => {
      const silo = fSilo({ name: 'F', channels: [4, 6, 8], f: down });
      const xs = pyramid(2, 8, [4, 6, 8], 50);
      const ys = expectReconstructs(silo, xs);
      // y_2 = x_2 + f_02(x_0) + f_12(x_1): from the inputs.
      const y2 = tf.addN([xs[2], down(0, 2).apply(xs[0], training), down(1, 2).apply(xs[1], training)]);
      expectAllclose(ys[2], tf.add(xs[2], tf.add(silo.updates[0].terms[0].transform.apply(xs[0], training), silo.updates[0].terms[1].transform.apply(xs[1], training))), 1e-6, 1e-7, 'y_2');
      expect(y2.shape).to.deep.equal(ys[2].shape);
      expect(Array.from(ys[0].dataSync())).to.deep.equal(Array.from(xs[0].dataSync()));
      expectBackwardIsAutodiff(silo, xs);
    });

    it('the G pass adds functions of the pass input from lower resolutions, and reconstructs', () => {
      const silo = gSilo({ name: 'G', channels: [4, 6, 8], g: up });
      const xs = pyramid(2, 8, [4, 6, 8], 60);
      const ys = expectReconstructs(silo, xs);
      expect(Array.from(ys[2].dataSync())).to.deep.equal(Array.from(xs[2].dataSync()));
      expectBackwardIsAutodiff(silo, xs);
    });

    it('a growing RevSilo maps N streams to N + 1 (half the size, configured channels) and its inverse back to N', () => {
      const silo = revSilo({ name: 'grow', channels: [4, 6, 8], grow: 2, f: down, g: up });
      const xs = pyramid(2, 16, [4, 6, 8], 70);
      const ys = expectReconstructs(silo, xs);
      expect(ys.map((y) => y.shape)).to.deep.equal([
        [2, 16, 16, 4],
        [2, 8, 8, 6],
        [2, 4, 4, 8],
        [2, 2, 2, 2],
      ]);
      expect(silo.inverse(ys, replay).length).to.equal(3);
      expectBackwardIsAutodiff(silo, xs);
    });

    it('with zero transforms a silo is the identity (growing: the new stream is zero), and so is its inverse', () => {
      const zero = (i: number, j: number) => transform(`z${i}${j}`, (x) => tf.zeros([x.shape[0], 16 / 2 ** j, 16 / 2 ** j, [4, 6, 2][j]]));
      const silo = revSilo({ name: 'zero', channels: [4, 6], grow: 2, f: zero, g: (j, i) => zero(j, i) });
      const xs = pyramid(2, 16, [4, 6], 80);
      const ys = silo.forward(xs, training);
      xs.forEach((x, k) => expect(Array.from(ys[k].dataSync())).to.deep.equal(Array.from(x.dataSync())));
      expect(tf.max(tf.abs(ys[2])).dataSync()[0]).to.equal(0);
      silo.inverse(ys, replay).forEach((x, k) => expect(Array.from(x.dataSync())).to.deep.equal(Array.from(xs[k].dataSync())));
    });

    it('RevBiFPN MBConv silos (growing and not), batch norm in training mode: reconstruct, backward equals autodiff', () => {
      const cfg = streams([8, 8, 16]);
      for (const grow of [undefined, { channels: 8, kernel: 3, pad: 2, expandRatio: 2, seRatio: 0 }]) {
        const silo = siloBlock({ name: grow ? 'mb-grow' : 'mb-silo', streams: cfg, grow }, variableFactory('silo'));
        const xs = pyramid(4, 16, [8, 8, 16], 90);
        const ys = expectReconstructs(silo, xs);
        expect(ys.length).to.equal(grow ? 4 : 3);
        expectBackwardIsAutodiff(silo, xs);
      }
    });

    it('refuses streams that do not halve and the wrong channels, naming the segment', () => {
      const silo = fSilo({ name: 'bad-silo', channels: [4, 6], f: down });
      expect(() => silo.forward([rand([2, 8, 8, 4], 1), rand([2, 5, 5, 6], 2)], training)).to.throw(TapfitError, /segment 'bad-silo': stream 1 .* the stream shapes do not halve/);
      expect(() => silo.forward([rand([2, 8, 8, 4], 1), rand([2, 4, 4, 5], 2)], training)).to.throw(TapfitError, /segment 'bad-silo': stream 1 has 5 channels, configured 6/);
      expect(() => silo.forward([rand([2, 8, 8, 4], 1)], training)).to.throw(TapfitError, /segment 'bad-silo': expects 2 streams, got 1/);
    });
  });

  it('space-to-depth is a segment with exact inverse and backward', () => {
    const s2d = spaceToDepthBlock('s2d', 4);
    const x = rand([2, 8, 8, 3], 99);
    const [y] = s2d.forward([x], training);
    expect(Array.from(s2d.inverse!([y], replay)[0].dataSync())).to.deep.equal(Array.from(x.dataSync()));
    const dy = rand(y.shape, 98);
    const want = tf.grads((a: tf.Tensor) => tf.sum(tf.mul(s2d.forward([a], training)[0], dy)))([x])[0];
    expect(Array.from(s2d.backward!([y], [dy], [], replay).dxs[0]!.dataSync())).to.deep.equal(Array.from(want.dataSync()));
    expect(() => s2d.forward([rand([1, 6, 8, 3], 1)], training)).to.throw(TapfitError, /segment 's2d': space-to-depth by 4/);
  });
});
