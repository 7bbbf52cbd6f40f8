import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { on, useShimmedWasm, webgpuOrSkip } from './helpers';

/*
 * Ops on int32 and bool tensors, wasm (with the shim) and webgpu where there is an adapter,
 * against cpu: shape, dtype and every value. A sweep like this found stock wasm's wrong
 * strided slices, clipByValue, Select and Reverse on those dtypes (wasm-shim/wrong-dtypes.ts,
 * wasm-shim/reverse.ts), and webgpu's int32 UnsortedSegmentSum (webgpu-shim/cpu-bridge.ts).
 */

const I = (values: number[], shape: number[]) => tf.tensor(values, shape, 'int32');
const ints = () => I([3, -7, 2, 9, -4, 0, 5, -1, 8, 6, -3, 1], [4, 3]);
const flags = () => tf.tensor2d([[true, false, false], [true, true, false], [false, false, true], [false, true, true]], undefined, 'bool');

const INT32_OPS: Record<string, () => tf.Tensor> = {
  tile: () => tf.tile(ints(), [2, 2]),
  transpose: () => tf.transpose(ints()),
  gather: () => tf.gather(ints(), I([2, 0], [2]), 1),
  pad: () => tf.pad(ints(), [[1, 1], [2, 0]], 7),
  max: () => tf.max(ints(), 1),
  min: () => tf.min(ints(), 0),
  sum: () => tf.sum(ints(), 1),
  prod: () => tf.prod(ints(), 0),
  argMax: () => tf.argMax(ints(), 1),
  argMin: () => tf.argMin(ints(), 0),
  cumsum: () => tf.cumsum(ints(), 1),
  'cumsum reverse': () => tf.cumsum(ints(), 0, false, true),
  abs: () => tf.abs(ints()),
  neg: () => tf.neg(ints()),
  square: () => tf.square(ints()),
  relu: () => tf.relu(ints()),
  sign: () => tf.sign(ints()),
  floorDiv: () => tf.floorDiv(ints(), I([-3], [1])),
  mod: () => tf.mod(ints(), I([3], [1])),
  maximum: () => tf.maximum(ints(), I([1], [1])),
  minimum: () => tf.minimum(ints(), I([1], [1])),
  clipByValue: () => tf.clipByValue(ints(), -2, 4),
  mul: () => tf.mul(ints(), ints()),
  'add (broadcast)': () => tf.add(ints(), I([1, 2, 3], [3])),
  squaredDifference: () => tf.squaredDifference(ints(), I([1], [1])),
  equal: () => tf.equal(ints(), I([2], [1])),
  greater: () => tf.greater(ints(), I([0], [1])),
  oneHot: () => tf.oneHot(I([0, 2, 1], [3]), 4),
  range: () => tf.range(0, 10, 3, 'int32'),
  reverse: () => tf.reverse(ints(), [0]),
  concat: () => tf.concat([ints(), ints()], 0),
  slice: () => tf.slice(ints(), [1, 1], [2, 2]),
  'stridedSlice, stride 2': () => tf.stridedSlice(ints(), [0, 0], [4, 3], [2, 1]),
  'stridedSlice, backwards': () => tf.stridedSlice(ints(), [0, 2], [4, 0], [1, -1]),
  stack: () => tf.stack([ints(), ints()], 1),
  'topk values': () => tf.topk(ints(), 2).values,
  'topk indices': () => tf.topk(ints(), 2).indices,
  unsortedSegmentSum: () => tf.unsortedSegmentSum(ints(), tf.tensor1d([0, 1, 0, 1], 'int32'), 2),
  gatherND: () => tf.gatherND(ints(), I([0, 1, 3, 2], [2, 2])),
  scatterND: () => tf.scatterND(I([0, 2], [2, 1]), I([5, 6], [2]), [4]),
  where: () => tf.where(tf.greater(ints(), I([0], [1])), ints(), tf.neg(ints())),
  batchToSpaceND: () => tf.batchToSpaceND(I([1, 2, 3, 4], [4, 1, 1, 1]), [2, 2], [[0, 0], [0, 0]]),
  spaceToBatchND: () => tf.spaceToBatchND(I([1, 2, 3, 4], [1, 2, 2, 1]), [2, 2], [[0, 0], [0, 0]]),
  mirrorPad: () => tf.mirrorPad(ints(), [[1, 1], [0, 0]], 'symmetric'),
  broadcastTo: () => tf.broadcastTo(I([1, 2, 3], [3]), [2, 3]),
  tensorScatterUpdate: () => tf.tensorScatterUpdate(ints(), I([1, 3], [2, 1]), I([0, 0, 0, 1, 1, 1], [2, 3])),
};

const BOOL_OPS: Record<string, () => tf.Tensor> = {
  transpose: () => tf.transpose(flags()),
  'transpose rank 3': () => tf.transpose(flags().reshape([2, 3, 2]), [2, 0, 1]),
  tile: () => tf.tile(flags(), [2, 1]),
  slice: () => tf.slice(flags(), [1, 1], [2, 1]),
  'stridedSlice, stride 2': () => tf.stridedSlice(flags(), [0, 0], [4, 3], [2, 1]),
  concat: () => tf.concat([flags(), flags()], 1),
  gather: () => tf.gather(flags(), I([3, 0, 0], [3])),
  reverse: () => tf.reverse(flags(), [1]),
  'where (bool branches)': () => tf.where(flags(), flags(), tf.logicalNot(flags())),
  'where (float branches)': () => tf.where(flags(), tf.onesLike(flags()).toFloat(), tf.zerosLike(flags()).toFloat()),
  logicalAnd: () => tf.logicalAnd(flags(), tf.reverse(flags(), 0)),
  any: () => tf.any(flags(), 1),
  all: () => tf.all(flags(), 0),
  cast: () => flags().toFloat(),
  stack: () => tf.stack([flags(), flags()]),
  unstack: () => tf.unstack(flags())[1],
  gatherND: () => tf.gatherND(flags(), I([1, 2, 3, 0], [2, 2])),
  broadcastTo: () => tf.broadcastTo(flags().reshape([1, 4, 3]), [2, 4, 3]),
  notEqual: () => tf.notEqual(flags(), tf.transpose(tf.transpose(flags()))),
};

function sweep(ops: Record<string, () => tf.Tensor>) {
  for (const [name, op] of Object.entries(ops)) {
    it(name, async () => {
      const run = () => tf.tidy(() => {
        const y = op();
        return { shape: y.shape, dtype: y.dtype, values: Array.from(y.dataSync()) };
      });
      const cpu = await on('cpu', run);
      expect(run()).to.deep.equal(cpu);
    });
  }
}

for (const backend of ['wasm', 'webgpu']) describe(`backend: int32 and bool ops on ${backend} equal cpu (shape, dtype, values)`, function () {
  before(async function () {
    await useShimmedWasm();
    if (backend === 'webgpu') await webgpuOrSkip(this, 'int32 and bool ops on webgpu');
  });
  after(() => tf.setBackend('cpu'));
  describe('int32', () => sweep(INT32_OPS));
  describe('bool', () => sweep(BOOL_OPS));
});
