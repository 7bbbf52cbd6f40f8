import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { mergeAxes } from '../../src/backend/wasm-shim/xnnpack-refusals';
import { useShimmedWasm } from './helpers';

/*
 * Calls XNNPACK refuses on wasm (wasm-shim/xnnpack-refusals.ts): element-wise binary kernels
 * and PadV2 above 6 dimensions, products with an empty contracted dimension. tfjs returned
 * whatever the heap held. Against the cpu backend.
 */

const values = (n: number, phase: number) => Array.from({ length: n }, (_, i) => Math.sin(i * 0.7 + phase) * 2 + 2.5);
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

const OPS: Record<string, (a: tf.Tensor, b: tf.Tensor) => tf.Tensor> = { add: tf.add, sub: tf.sub, mul: tf.mul, div: tf.div, squaredDifference: tf.squaredDifference };

const CASES: Array<[string, number[], number[]]> = [
  ['rank 7, same shape', [2, 1, 2, 3, 1, 2, 2], [2, 1, 2, 3, 1, 2, 2]],
  ['rank 7, broadcast that merges to 2 axes', [2, 2, 2, 2, 3, 1, 1], [1, 2, 2, 2, 3, 1, 1]],
  ['rank 8, alternating broadcast (8 axes after merging: cpu)', [2, 1, 2, 1, 2, 1, 3, 2], [1, 2, 1, 2, 1, 2, 3, 1]],
  ['rank 12, a second-order gradient of tile', [1, 2, 1, 4, 1, 1, 1, 3, 1, 1, 1, 2], [1, 2, 1, 4, 2, 1, 1, 3, 2, 1, 1, 2]],
];

describe('backend: calls XNNPACK refuses on wasm, against cpu', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));

  const on = async (backend: string, f: () => tf.Tensor) => {
    await tf.setBackend(backend);
    const dataIds = tf.backend().numDataIds();
    const y = f();
    const out = { shape: y.shape, values: Array.from(y.dataSync()) };
    y.dispose();
    expect(tf.backend().numDataIds(), `${backend}: backend data left behind`).to.equal(dataIds);
    return out;
  };

  for (const [label, aShape, bShape] of CASES) {
    it(`${label}: add, sub, mul, div, squaredDifference`, async () => {
      for (const [name, op] of Object.entries(OPS)) {
        const run = () => tf.tidy(() => op(tf.tensor(values(size(aShape), 0.3), aShape), tf.tensor(values(size(bShape), 1.9), bShape)));
        const [wasm, cpu] = [await on('wasm', run), await on('cpu', run)];
        expect(wasm.shape, name).to.deep.equal(cpu.shape);
        wasm.values.forEach((v, i) => expect(v, `${name} element ${i}`).to.be.closeTo(cpu.values[i], 1e-5 * Math.max(1, Math.abs(cpu.values[i]))));
      }
    });
  }

  it('pad at rank 7', async () => {
    const shape = [2, 1, 2, 3, 1, 2, 2];
    const run = () => tf.tidy(() => tf.pad(tf.tensor(values(size(shape), 0.1), shape), [[1, 0], [0, 1], [0, 0], [1, 1], [0, 0], [2, 0], [0, 1]], 0.5));
    const [wasm, cpu] = [await on('wasm', run), await on('cpu', run)];
    expect(wasm).to.deep.equal(cpu);
  });

  it('products with an empty contracted dimension: zeros, and the bias and activation when fused', async () => {
    for (const [m, n] of [[2, 4], [16, 40]]) {
      const plain = () => tf.matMul(tf.ones([m, 0]), tf.ones([0, n]));
      const fused = () => tf.fused.matMul({ a: tf.ones([0, m]), b: tf.ones([0, n]), transposeA: true, bias: tf.range(0, n).sub(2), activation: 'relu' });
      for (const run of [plain, fused]) {
        const [wasm, cpu] = [await on('wasm', () => tf.tidy(run)), await on('cpu', () => tf.tidy(run))];
        expect(wasm).to.deep.equal(cpu);
      }
    }
  });

  it('mergeAxes drops size-1 axes and joins neighbours where each input keeps its kind', () => {
    expect(mergeAxes([2, 2, 2, 2, 3, 1, 1], [1, 2, 2, 2, 3, 1, 1], [2, 2, 2, 2, 3, 1, 1])).to.deep.equal({ a: [2, 24], b: [1, 24], out: [2, 24] });
    expect(mergeAxes([3, 4], [4], [3, 4])).to.deep.equal({ a: [3, 4], b: [1, 4], out: [3, 4] });
    expect(mergeAxes([1, 1], [1], [1, 1])).to.deep.equal({ a: [1], b: [1], out: [1] });
    expect(mergeAxes([5, 1, 6], [5, 7, 6], [5, 7, 6])).to.deep.equal({ a: [5, 1, 6], b: [5, 7, 6], out: [5, 7, 6] });
  });
});
