import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { onBackendOrSkip } from './helpers';

/*
 * StridedSlice with a shrunk axis and another axis strided (wasm-shim/strided-slice-shrink.ts):
 * stock tfjs read the wrong elements on cpu and wasm. Expected values are numpy's slicing
 * of a [4, 5, 3] range (element value = flat position), worked out by hand. On webgpu
 * too where this machine has an adapter (skipped with the reason otherwise).
 */

type Case = [label: string, begin: number[], end: number[], strides: number[], masks: number[], values: number[], shape: number[]];

const CASES: Case[] = [
  ['x[1, :, 2]', [1, 0, 2], [2, 5, 3], [1, 1, 1], [0, 0, 0, 0, 0b101], [17, 20, 23, 26, 29], [5]],
  ['x[1, ::3, 2]', [1, 0, 2], [2, 5, 3], [1, 3, 1], [0, 0, 0, 0, 0b101], [17, 26], [2]],
  ['x[1, ::3, 2] with ends 0 on the shrunk axes', [1, 0, 2], [0, 5, 0], [1, 3, 1], [0, 0, 0, 0, 0b101], [17, 26], [2]],
  ['x[1, ::3, :]', [1, 0, 0], [2, 5, 3], [1, 3, 1], [0, 0, 0, 0, 0b001], [15, 16, 17, 24, 25, 26], [2, 3]],
  ['x[::2, 1, 0]', [0, 1, 0], [4, 2, 1], [2, 1, 1], [0, 0, 0, 0, 0b110], [3, 33], [2]],
  ['x[1, ::2]', [1, 0], [2, 5], [1, 2], [0, 0, 0, 0, 0b1], [15, 16, 17, 21, 22, 23, 27, 28, 29], [3, 3]],
  ['x[-1, ::-2, 1]', [-1, -1, 1], [0, -6, 2], [1, -2, 1], [0, 0, 0, 0, 0b101], [58, 52, 46], [3]],
  ['x[::2, newaxis, 1::2, 0]', [0, 0, 1, 0], [4, 0, 5, 1], [2, 1, 2, 1], [0, 0, 0, 0b10, 0b1000], [3, 9, 33, 39], [2, 1, 2]],
  ['x[..., 1] (ellipsis, no stride: the stock kernel)', [0, 1], [0, 2], [1, 1], [0, 0, 0b1, 0, 0b10], [1, 4, 7, 10, 13, 16, 19, 22, 25, 28, 31, 34, 37, 40, 43, 46, 49, 52, 55, 58], [4, 5]],
];

for (const backend of ['cpu', 'wasm', 'webgpu']) {
  describe(`backend: StridedSlice with shrunk and strided axes, on ${backend}`, function () {
    before(async function () {
      await onBackendOrSkip(this, backend, 'StridedSlice on webgpu');
    });
    after(() => tf.setBackend('cpu'));

    for (const [label, begin, end, strides, [beginMask, endMask, ellipsisMask, newAxisMask, shrinkAxisMask], values, shape] of CASES) {
      it(`${label}: numpy's elements and shape, float32, int32 and bool`, () => {
        for (const dtype of ['float32', 'int32'] as const) {
          const y = tf.tidy(() => tf.stridedSlice(tf.range(0, 60, 1, dtype).reshape([4, 5, 3]), begin, end, strides, beginMask, endMask, ellipsisMask, newAxisMask, shrinkAxisMask));
          expect([y.dtype, y.shape, Array.from(y.dataSync())], dtype).to.deep.equal([dtype, shape, values]);
          y.dispose();
        }
        const odd = tf.tidy(() => tf.stridedSlice(tf.range(0, 60, 1, 'int32').reshape([4, 5, 3]).mod(2).cast('bool'), begin, end, strides, beginMask, endMask, ellipsisMask, newAxisMask, shrinkAxisMask));
        expect([odd.dtype, Array.from(odd.dataSync())]).to.deep.equal(['bool', values.map((v) => v % 2)]);
        odd.dispose();
      });
    }
  });
}
