import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useShimmedWasm } from './helpers';

/*
 * NaN reaches the result on wasm as on cpu (fast-kernels/nan-propagation.ts): XNNPACK's
 * clamp made NaN its lower bound (clipByValue, relu6, relu/relu6 fused into a product, and
 * relu on a NaN with its sign bit set) and its pooling wrote -Infinity for a window with a
 * NaN. Every other value stays what it was.
 */

/** A NaN with its sign bit set, as x86 makes for Inf - Inf (relu kept only the other sign). */
const negativeNaN = () => {
  const bits = new Uint32Array([0xffc00000]);
  return new Float32Array(bits.buffer)[0];
};

describe('backend: NaN propagates through clamps, fused activations and pooling on wasm', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));

  const run = async (backend: string, f: () => tf.Tensor) => {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const y = tf.tidy(f);
    const values = Array.from(y.dataSync());
    y.dispose();
    expect(tf.memory().numTensors, `${backend}: tensors left behind`).to.equal(before);
    return values;
  };
  /** wasm's values: NaN exactly where `nanAt` says, every other value cpu's (to float32 rounding). */
  const check = async (f: () => tf.Tensor, nanAt: (i: number, cpu: number) => boolean) => {
    const cpu = await run('cpu', f);
    const wasm = await run('wasm', f);
    expect(wasm.length).to.equal(cpu.length);
    wasm.forEach((w, i) => {
      if (nanAt(i, cpu[i])) expect(w, `result[${i}] (cpu ${cpu[i]})`).to.be.NaN;
      else if (w !== cpu[i]) expect(Math.abs(w - cpu[i]), `result[${i}]: wasm ${w}, cpu ${cpu[i]}`).to.be.at.most(1e-5 * Math.max(1, Math.abs(cpu[i])));
    });
  };
  const asCpu = (_: number, cpu: number) => Number.isNaN(cpu);

  // Long enough for the SIMD loop and its scalar tail.
  const row = () => tf.tensor1d([NaN, -1, 2, Infinity, -Infinity, 0.5, 7, -3, negativeNaN(), 4, -0.25]);

  it('clipByValue and relu6 keep NaN (wasm gave the lower bound)', async () => {
    await check(() => tf.clipByValue(row(), 0, 1), asCpu);
    await check(() => tf.clipByValue(row(), -1e9, 1e9), asCpu);
    await check(() => tf.relu6(row()), asCpu);
  });

  it('relu keeps a NaN of either sign (wasm made one with its sign bit set 0)', async () => {
    await check(() => tf.relu(row()), asCpu);
    await check(() => tf.relu(tf.sub(tf.fill([9], Infinity), tf.fill([9], Infinity))), () => true);
  });

  it('relu and relu6 fused into dense and convolution products keep NaN (as predict and recomputed forwards run them)', async () => {
    const a = () => tf.tensor2d([NaN, -1, 2, 3, 0.5, 7, -3, 1], [2, 4]);
    const b = () => tf.tensor2d([1, 0.5, -1, 0, 0.25, 1, 2, -1], [4, 2]);
    for (const activation of ['relu', 'relu6'] as const) {
      await check(() => tf.fused.matMul({ a: a(), b: b(), bias: tf.tensor1d([0.1, -0.2]), activation }), asCpu);
      const x = () => tf.tensor4d([NaN, 1, 2, 3, 4, 5, 6, 7, 8, -9, 10, -11, 12, 13, 14, 15], [1, 4, 4, 1]);
      await check(() => tf.fused.conv2d({ x: x(), filter: tf.ones([2, 2, 1, 2]), strides: 1, pad: 'valid', bias: tf.tensor1d([0, -20]), activation }), asCpu);
      await check(() => tf.fused.depthwiseConv2d({ x: x(), filter: tf.ones([2, 2, 1, 1]), strides: 1, pad: 'same', activation }), asCpu);
    }
    // Other activations were right already and are not touched.
    await check(() => tf.fused.matMul({ a: a(), b: b(), activation: 'elu' }), asCpu);
  });

  it("max and average pooling give cpu's values for a window holding NaN (wasm wrote -Infinity)", async () => {
    const x = () => tf.tensor4d([NaN, 1, 2, 3, 4, 5, 6, 7, 8], [1, 3, 3, 1]);
    await check(() => tf.avgPool(x(), 2, 1, 'valid'), asCpu);
    await check(() => tf.maxPool(x(), 2, 1, 'valid'), asCpu);
    // A true -Infinity stays.
    await check(() => tf.maxPool(tf.tensor4d([-Infinity, -Infinity, -Infinity, -Infinity, 1, 2, 3, 4], [1, 2, 4, 1]), 2, 2, 'valid'), asCpu);
    // 'same' padding, several channels and images, NaN at several window positions.
    const big = () => tf.tidy(() => tf.where(tf.equal(tf.mod(tf.range(0, 2 * 5 * 5 * 3), 17), 0).reshape([2, 5, 5, 3]), tf.fill([2, 5, 5, 3], NaN), tf.randomNormal([2, 5, 5, 3], 0, 1, 'float32', 7)));
    for (const pool of [tf.maxPool, tf.avgPool]) {
      await check(() => pool(big() as tf.Tensor4D, 3, 2, 'same'), asCpu);
      await check(() => pool(big() as tf.Tensor4D, 2, 2, 'valid'), asCpu);
    }
    const nan = await run('cpu', () => tf.avgPool(big() as tf.Tensor4D, 3, 2, 'same'));
    expect(nan.filter(Number.isNaN).length, 'windows holding NaN').to.be.above(3);
  });
});
