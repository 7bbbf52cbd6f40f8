import * as tf from '@tensorflow/tfjs';
import { adam, ErrorCodes, modelVariables, sgd, SilentLogger, TapfitError, tensorData, Trainer, type TrainableModel } from '@tapfit/core';
import { expect } from 'chai';
import { coupling, diceCrossEntropy, fixedPointQuantizer, MBConv, ReversibleSegment, reversibleUNet3d, revBiFPN, revSilo, revsilo, siloBlock, streamBlocks, variableFactory } from '../src';
import { bitsOf, replay, setBackend, training } from './helpers';

const rand = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);
const expectBitwise = (a: tf.Tensor, b: tf.Tensor, what: string) => expect(bitsOf(a), what).to.deep.equal(bitsOf(b));

/** A coupling whose F and G are MBConvs with batch norm in training mode. */
function mbconvCoupling(fixedPoint: number | undefined) {
  const params = variableFactory(`fx${Math.random()}`, 7);
  const conv = (which: string) => new MBConv(which, { dims: 2, inChannels: 4, outChannels: 4, kernel: 3, expandRatio: 2, seRatio: 0.25, norm: 'batch' }, params.scope(which));
  return coupling({ name: 'exact', f: conv('F'), g: conv('G'), fixedPoint });
}

describe('exact fixed-point arithmetic (reversible/fixed-point.ts)', () => {
  setBackend('cpu');

  it('rounds to the 2^-bits grid (within half a step, idempotent) and passes gradients straight through', () => {
    const q = fixedPointQuantizer('s', 16)!;
    const x = tf.mul(rand([1000], 1), 10);
    const y = q(x);
    const scaled = tf.mul(y, 2 ** 16).dataSync();
    expect(Array.from(scaled).every((v) => Number.isInteger(v))).to.equal(true);
    expect(tf.max(tf.abs(tf.sub(y, x))).dataSync()[0]).to.be.at.most(2 ** -17);
    expectBitwise(q(y), y, 'q(q(x)) = q(x)');
    const w = rand([1000], 2);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(q(v), w)))(x);
    expectBitwise(g, w, 'gradient of q is the identity');
    expect(fixedPointQuantizer('s', 0)).to.equal(undefined);
  });

  it('a coupling rebuilds its (rounded) input bit for bit, in inverse and in the one-pass backward', () => {
    const block = mbconvCoupling(16);
    const x = rand([2, 6, 6, 8], 3);
    const ys = block.forward([x], training);
    const want = fixedPointQuantizer('s', 16)!(x);
    expectBitwise(block.inverse([ys[0]], replay)[0], want, 'inverse(forward(x))');
    expectBitwise(block.forward(block.inverse(ys, replay), replay)[0], ys[0], 'forward(inverse(y))');
    const r = block.backward(ys, [rand(ys[0].shape, 4)], block.params.filter((v) => v.trainable), replay);
    expectBitwise(r.xs[0], want, "backward's rebuilt input");
  });

  it('a growing RevSilo rebuilds its streams bit for bit', () => {
    const dense = (seed: number, cout: number, stride: number) => {
      const w = tf.variable(tf.mul(rand([3, 3, 4, cout], seed), 0.3));
      return { name: `t${seed}`, params: [w], apply: (x: tf.Tensor) => tf.tanh(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, stride, 'same')) };
    };
    const up = (seed: number, factor: number) => {
      const w = tf.variable(tf.mul(rand([3, 3, 4, 4], seed), 0.3));
      return { name: `u${seed}`, params: [w], apply: (x: tf.Tensor) => tf.image.resizeNearestNeighbor(tf.tanh(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same')), [x.shape[1]! * factor, x.shape[2]! * factor]) };
    };
    const silo = revSilo({ name: 'silo', channels: [4, 4], grow: 4, fixedPoint: 16, f: (i, j) => dense(10 * i + j, 4, 2 ** (j - i)), g: (j, i) => up(100 + 10 * j + i, 2 ** (j - i)) });
    const xs = [rand([2, 8, 8, 4], 5), rand([2, 4, 4, 4], 6)];
    const ys = silo.forward(xs, training);
    expect(ys.length).to.equal(3);
    const back = silo.inverse(ys, replay);
    const q = fixedPointQuantizer('s', 16)!;
    back.forEach((b, k) => expectBitwise(b, q(xs[k]), `stream ${k}`));
  });

  const recorder = (into: number[]) => ({ name: 'loss-recorder', core: '*', apply: ({ hooks }: { hooks: { batchEnd: { tap(o: string, f: (i: { loss(): number }) => void): void } } }) => hooks.batchEnd.tap('loss-recorder', (i) => void into.push(i.loss())) });

  /** Trains the reversible model (revsilo) and its stored twin; returns both runs' losses and final variables. */
  async function trainBoth(build: () => TrainableModel & { stored(): TrainableModel; dispose(): void }, data: { x: tf.Tensor; y: tf.Tensor }, options: { loss: 'softmaxCrossEntropy' | ReturnType<typeof diceCrossEntropy>; optimizer: () => ReturnType<typeof sgd>; batchSize: number }) {
    const run = async (reversible: boolean) => {
      const model = build();
      const losses: number[] = [];
      const trainer = new Trainer({ model: reversible ? model : model.stored(), loss: options.loss, optimizer: options.optimizer(), plugins: reversible ? [revsilo(), recorder(losses)] : [recorder(losses)], logger: new SilentLogger() });
      await trainer.fit(tensorData(data.x, data.y), { epochs: 2, batchSize: options.batchSize, shuffle: false });
      const values = modelVariables(model).map((v) => tf.keep(v.clone()));
      trainer.dispose();
      model.dispose();
      return { losses, values };
    };
    return { rev: await run(true), twin: await run(false) };
  }

  it('RevBiFPN (default: 16 fraction bits) trains exactly like its stored twin: same losses and weights, bit for bit', async () => {
    const data = { x: rand([8, 32, 32, 3], 2), y: tf.tensor1d([0, 1, 2, 0, 1, 2, 0, 1], 'int32') };
    const build = () => revBiFPN({ width: 0.25, streams: 3, extensions: 1, inputSize: 32, classes: 3, dropout: 0, seed: 3 });
    expect(build().config.settings.fixedPoint).to.equal(16);
    const { rev, twin } = await trainBoth(build, data, { loss: 'softmaxCrossEntropy', optimizer: () => sgd({ lr: 0.05, momentum: 0.9 }), batchSize: 4 });
    expect(rev.losses.length).to.equal(4);
    expect(rev.losses).to.deep.equal(twin.losses);
    rev.values.forEach((v, i) => expectBitwise(v, twin.values[i], `variable ${i}`));
  });

  it('the 3-D U-Net (default: 16 fraction bits) trains exactly like its stored twin under Adam, bit for bit', async () => {
    const data = { x: rand([2, 8, 8, 8, 1], 7), y: tf.randomUniform([2, 8, 8, 8], 0, 3, 'int32', 8) };
    const build = () => reversibleUNet3d({ levels: 2, blocksPerLevel: 2, baseChannels: 4, expandRatio: 2, classes: 3 });
    const { rev, twin } = await trainBoth(build, data, { loss: diceCrossEntropy({ classes: 3 }), optimizer: () => adam({ lr: 0.01 }), batchSize: 1 });
    expect(rev.losses.length).to.equal(4);
    expect(rev.losses).to.deep.equal(twin.losses);
    rev.values.forEach((v, i) => expectBitwise(v, twin.values[i], `variable ${i}`));
  });

  it('defaults as the README says: the model builders 16 fraction bits (passed to their blocks), the blocks built directly float32', () => {
    const stream = { channels: 8, kernel: 3, expandRatio: 1, seRatio: 0 };
    expect(streamBlocks({ name: 'direct-blocks', streams: [stream] }, variableFactory('db')).fixedPoint).to.equal(undefined);
    expect(siloBlock({ name: 'direct-silo', streams: [stream, stream] }, variableFactory('ds')).fixedPoint).to.equal(undefined);
    expect(streamBlocks({ name: 'set-blocks', streams: [stream], fixedPoint: 16 }, variableFactory('sb')).fixedPoint).to.equal(16);
    const bits = (m: { segments: readonly unknown[] }) => m.segments.filter((s): s is ReversibleSegment => s instanceof ReversibleSegment).map((s) => s.fixedPoint);
    const bifpn = revBiFPN({ width: 0.25, streams: 2, extensions: 1, inputSize: 16, classes: 3, name: 'default-bits' });
    const unet = reversibleUNet3d({ levels: 2, blocksPerLevel: 1, baseChannels: 4, expandRatio: 2, name: 'default-bits-unet' });
    for (const b of [bits(bifpn), bits(unet)]) expect(b.length > 0 && b.every((n) => n === 16), String(b)).to.equal(true);
    bifpn.dispose();
    unet.dispose();
  });

  it('refuses a bad fixedPoint option, naming the builder or segment and the fix', () => {
    const expectError = (f: () => unknown, where: string) => {
      let err: unknown;
      try {
        f();
      } catch (e) {
        err = e;
      }
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal(ErrorCodes.CONFIG);
      expect((err as Error).message).to.contain(where).and.to.contain("'fixedPoint'").and.to.contain('1 to 23');
    };
    expectError(() => revBiFPN({ width: 0.25, streams: 2, inputSize: 32, fixedPoint: 30 }), 'revBiFPN');
    expectError(() => reversibleUNet3d({ fixedPoint: 2.5 }), 'reversibleUNet3d');
    expectError(() => mbconvCoupling(-1), "segment 'exact'");
  });
});
