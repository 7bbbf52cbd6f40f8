import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { on, relativeError, useShimmedWasm, webgpuOrSkip } from './helpers';

/*
 * Float32 ops on shimmed wasm (the shim and the fast kernels), and on webgpu where there is
 * an adapter, against cpu: the forward values of 91 ops and the input gradients of 88 (cpu with tapfit's gradient fixes, which
 * selectBackend installs on every backend). A guard for kernel work: any kernel the shim
 * or the fast kernels replace shows up here if it disagrees with cpu.
 */

const F = (values: number[], shape: number[]) => tf.tensor(values, shape, 'float32');
const X = [0.3, -1.7, 2.2, -0.4, 0.15, 5.5, -3.1, 0.9, 1.1, -2.6, 4.2, -0.05];
const IMG = Array.from({ length: 2 * 5 * 6 * 3 }, (_, i) => Math.sin(i * 1.7) * 3);
const VOL = Array.from({ length: 1 * 4 * 4 * 4 * 2 }, (_, i) => Math.cos(i * 0.9) * 2);
const x = () => tf.tensor2d(X, [4, 3]);
const img = () => tf.tensor4d(IMG, [2, 5, 6, 3]);
const vol = () => tf.tensor5d(VOL, [1, 4, 4, 4, 2]);

// floorDiv is left out: cpu returns int32 for float inputs, wasm float32 (a tfjs difference, not tapfit's).
const FORWARD: Record<string, () => tf.Tensor> = {
  exp: () => tf.exp(x()),
  log1p: () => tf.log1p(tf.abs(x())),
  sqrt: () => tf.sqrt(tf.abs(x())),
  rsqrt: () => tf.rsqrt(tf.abs(x()).add(0.1)),
  sigmoid: () => tf.sigmoid(x()),
  tanh: () => tf.tanh(x()),
  softplus: () => tf.softplus(x()),
  elu: () => tf.elu(x()),
  selu: () => tf.selu(x()),
  leakyRelu: () => tf.leakyRelu(x(), 0.2),
  prelu: () => tf.prelu(x(), F([0.1, 0.2, 0.3], [3])),
  relu6: () => tf.relu6(x()),
  softmax: () => tf.softmax(x()),
  logSoftmax: () => tf.logSoftmax(x()),
  erf: () => tf.erf(x()),
  sin: () => tf.sin(x()),
  cos: () => tf.cos(x()),
  atan2: () => tf.atan2(x(), x().reverse(0)),
  pow: () => tf.pow(tf.abs(x()), F([0.5, 2, 3], [3])),
  round: () => tf.round(x()),
  floor: () => tf.floor(x()),
  ceil: () => tf.ceil(x()),
  mod: () => tf.mod(x(), F([0.7], [1])),
  mean: () => tf.mean(x(), 0),
  variance: () => tf.moments(x(), 1).variance,
  max: () => tf.max(x(), 0),
  min: () => tf.min(x(), 1),
  prod: () => tf.prod(x(), 1),
  logSumExp: () => tf.logSumExp(x(), 1),
  argMax: () => tf.argMax(x(), 0),
  norm: () => tf.norm(x()),
  cumsum: () => tf.cumsum(x(), 0),
  cumsumExRev: () => tf.cumsum(x(), 1, true, true),
  cumprod: () => tf.cumprod(x(), 0),
  maxPool: () => tf.maxPool(img(), 2, 2, 'same'),
  maxPool3: () => tf.maxPool(img(), 3, 1, 'valid'),
  avgPool: () => tf.avgPool(img(), 2, 2, 'same'),
  avgPool3: () => tf.avgPool(img(), 3, 2, 'same'),
  maxPool3d: () => tf.maxPool3d(vol(), 2, 2, 'valid'),
  avgPool3d: () => tf.avgPool3d(vol(), 2, 1, 'same'),
  conv3d: () => tf.conv3d(vol(), (tf.ones([2, 2, 2, 2, 3]) as tf.Tensor5D), 1, 'same'),
  conv1d: () => tf.conv1d((x().reshape([1, 4, 3]) as tf.Tensor3D), (tf.ones([2, 3, 2]) as tf.Tensor3D), 1, 'same'),
  conv2dStride: () => tf.conv2d(img(), tf.fill([3, 3, 3, 2], 0.1) as tf.Tensor4D, 2, 'same'),
  depthwise: () => tf.depthwiseConv2d(img(), tf.fill([3, 3, 3, 2], 0.1) as tf.Tensor4D, 1, 'valid'),
  sepConv: () => tf.separableConv2d(img(), tf.fill([3, 3, 3, 1], 0.1) as tf.Tensor4D, (tf.ones([1, 1, 3, 4]) as tf.Tensor4D), 1, 'same'),
  convT: () => tf.conv2dTranspose(img(), tf.fill([3, 3, 2, 3], 0.1) as tf.Tensor4D, [2, 10, 12, 2], 2, 'same'),
  resizeBilinear: () => tf.image.resizeBilinear(img(), [7, 9]),
  resizeBilinearAC: () => tf.image.resizeBilinear(img(), [7, 9], true),
  resizeNearest: () => tf.image.resizeNearestNeighbor(img(), [9, 4]),
  resizeNearestHP: () => tf.image.resizeNearestNeighbor(img(), [9, 4], false, true),
  cropAndResize: () => tf.image.cropAndResize(img(), tf.tensor2d([0, 0, 1, 1, 0.2, 0.1, 0.7, 0.9], [2, 4]), tf.tensor1d([0, 1], 'int32'), [3, 3]),
  flipLR: () => tf.image.flipLeftRight(img()),
  rotate: () => tf.image.rotateWithOffset(img(), 0.5),
  batchNorm: () => tf.batchNorm(x(), F([0.1, 0.2, 0.3], [3]), F([1, 2, 3], [3]), F([0, 1, 0], [3]), F([1, 1, 2], [3]), 0.001),
  lrn: () => tf.localResponseNormalization(img(), 2),
  topk: () => tf.topk(x().reshape([12]), 5).values,
  matMulT: () => tf.matMul(x(), x(), true, false),
  matMulBT: () => tf.matMul(x(), x(), false, true),
  dot3: () => tf.matMul(x().reshape([2, 2, 3]), x().reshape([2, 3, 2])),
  fusedRelu: () => tf.fused.matMul({ a: x(), b: x(), transposeB: true, bias: F([1, -1, 0, 2], [4]), activation: 'relu' }),
  fusedConvRelu: () => tf.fused.conv2d({ x: img(), filter: tf.fill([3, 3, 3, 2], 0.1) as tf.Tensor4D, strides: 1, pad: 'same', bias: F([0.5, -20], [2]), activation: 'relu' }),
  fusedConvLeaky: () => tf.fused.conv2d({ x: img(), filter: tf.fill([3, 3, 3, 2], 0.1) as tf.Tensor4D, strides: 1, pad: 'same', activation: 'leakyrelu', leakyreluAlpha: 0.3 }),
  fusedConvPrelu: () => tf.fused.conv2d({ x: img(), filter: tf.fill([3, 3, 3, 2], 0.1) as tf.Tensor4D, strides: 1, pad: 'same', activation: 'prelu', preluActivationWeights: F([0.1, 0.5], [2]) }),
  fusedDw: () => tf.fused.depthwiseConv2d({ x: img(), filter: tf.fill([3, 3, 3, 1], 0.1) as tf.Tensor4D, strides: 1, pad: 'same', bias: F([1, 2, 3], [3]), activation: 'relu6' }),
  squaredDiff: () => tf.squaredDifference(x(), x().reverse(1)),
  divNoNan: () => tf.divNoNan(x(), F([0, 1, 2], [3])),
  isNaN: () => tf.isNaN(F([NaN, 1, Infinity], [3])),
  isInf: () => tf.isInf(F([NaN, 1, -Infinity], [3])),
  step: () => tf.step(x(), 0.5),
  clip: () => tf.clipByValue(x(), -1, 1),
  linspace: () => tf.linspace(0, 1, 5),
  diag: () => tf.diag(F([1, 2, 3], [3])),
  bandPart: () => tf.linalg.bandPart(F(Array.from({ length: 16 }, (_, i) => i), [4, 4]), 1, 0),
  einsum: () => tf.einsum('ij,kj->ik', x(), x()),
  gatherBatch: () => tf.gather(x(), tf.tensor1d([2, 0], 'int32')),
  unsortedSeg: () => tf.unsortedSegmentSum(x(), tf.tensor1d([1, 0, 1, 0], 'int32'), 2),
  sparseToDense: () => tf.sparseToDense(tf.tensor1d([0, 2], 'int32'), F([5, 6], [2]), [4]),
  denseBincount: () => tf.denseBincount(tf.tensor1d([0, 1, 1, 3], 'int32'), tf.tensor1d([0.5, 1, 2, 3]), 4),
  depthToSpace: () => tf.depthToSpace(tf.tile(img().slice([0, 0, 0, 0], [2, 2, 2, 3]), [1, 1, 1, 4]), 2),
  mirrorPadR: () => tf.mirrorPad(x(), [[1, 2], [2, 1]], 'reflect'),
  padV2: () => tf.pad(img(), [[0, 0], [1, 2], [0, 1], [0, 0]], -1),
  tile4: () => tf.tile(img(), [1, 2, 1, 2]),
  transpose4: () => tf.transpose(img(), [0, 3, 1, 2]),
  stridedSliceNeg: () => tf.stridedSlice(img(), [0, 4, 5, 0], [2, 0, 0, 3], [1, -2, -2, 1]),
  reverse4: () => tf.reverse(img(), [1, 3]),
  oneHotF: () => tf.oneHot(tf.tensor1d([1, 0, 3], 'int32'), 4, 2.5, -1),
  sum3: () => tf.sum(img(), [1, 2]),
  maxAxes: () => tf.max(img(), [0, 3]),
  meanKeep: () => tf.mean(img(), [1, 2], true),
  argMin3: () => tf.argMin(img(), 2),
  allFloat: () => tf.all(tf.greater(img(), 0), 1),
};

/**
 * [input values, input shape, the op]: the gradient of sum(op(x) * w) with respect to x,
 * for a fixed w. cumprod, einsum, cropAndResize and divNoNan had no (or a NaN) gradient in
 * tfjs; tapfit's are checked against oracles in missing-gradients-math and
 * op-replacements, and here wasm against cpu.
 */
const GRADIENT: Record<string, [number[], number[], (x: never) => tf.Tensor]> = {
  exp: [X, [4, 3], (x: tf.Tensor2D) => tf.exp(x.mul(0.3))],
  sigmoid: [X, [4, 3], tf.sigmoid],
  tanh: [X, [4, 3], tf.tanh],
  softplus: [X, [4, 3], tf.softplus],
  elu: [X, [4, 3], tf.elu],
  selu: [X, [4, 3], tf.selu],
  leakyRelu: [X, [4, 3], (x: tf.Tensor2D) => tf.leakyRelu(x, 0.2)],
  prelu: [X, [4, 3], (x: tf.Tensor2D) => tf.prelu(x, F([0.1, 0.2, 0.3], [3]))],
  relu6: [X, [4, 3], tf.relu6],
  softmax: [X, [4, 3], tf.softmax],
  logSoftmax: [X, [4, 3], tf.logSoftmax],
  erf: [X, [4, 3], tf.erf],
  sin: [X, [4, 3], tf.sin],
  atan2: [X, [4, 3], (x: tf.Tensor2D) => tf.atan2(x, F([1, -2, 0.5], [3]))],
  pow: [X, [4, 3], (x: tf.Tensor2D) => tf.pow(tf.abs(x).add(0.1), F([0.5, 2, 3], [3]))],
  sqrt: [X, [4, 3], (x: tf.Tensor2D) => tf.sqrt(tf.abs(x).add(0.1))],
  mean: [X, [4, 3], (x: tf.Tensor2D) => tf.mean(x, 0)],
  moments: [X, [4, 3], (x: tf.Tensor2D) => tf.moments(x, 1).variance],
  max: [X, [4, 3], (x: tf.Tensor2D) => tf.max(x, 0)],
  min: [X, [4, 3], (x: tf.Tensor2D) => tf.min(x, 1)],
  prod: [X, [4, 3], (x: tf.Tensor2D) => tf.prod(x, 1)],
  logSumExp: [X, [4, 3], (x: tf.Tensor2D) => tf.logSumExp(x, 1)],
  norm: [X, [4, 3], (x: tf.Tensor2D) => tf.norm(x)],
  cumsum: [X, [4, 3], (x: tf.Tensor2D) => tf.cumsum(x, 0)],
  cumsumExRev: [X, [4, 3], (x: tf.Tensor2D) => tf.cumsum(x, 1, true, true)],
  maxPool: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.maxPool(x, 2, 2, 'same')],
  maxPool3: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.maxPool(x, 3, 1, 'valid')],
  avgPool: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.avgPool(x, 2, 2, 'same')],
  avgPool3: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.avgPool(x, 3, 2, 'same')],
  maxPool3d: [VOL, [1, 4, 4, 4, 2], (x: tf.Tensor5D) => tf.maxPool3d(x, 2, 2, 'valid')],
  avgPool3d: [VOL, [1, 4, 4, 4, 2], (x: tf.Tensor5D) => tf.avgPool3d(x, 2, 1, 'same')],
  conv3d: [VOL, [1, 4, 4, 4, 2], (x: tf.Tensor5D) => tf.conv3d(x, (tf.ones([2, 2, 2, 2, 3]) as tf.Tensor5D), 1, 'same')],
  conv1d: [X, [1, 4, 3], (x: tf.Tensor3D) => tf.conv1d(x, (tf.ones([2, 3, 2]) as tf.Tensor3D), 1, 'same')],
  conv2dStride: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.conv2d(x, tf.fill([3, 3, 3, 2], 0.1) as tf.Tensor4D, 2, 'same')],
  depthwise: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.depthwiseConv2d(x, tf.fill([3, 3, 3, 2], 0.1) as tf.Tensor4D, 1, 'valid')],
  sepConv: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.separableConv2d(x, tf.fill([3, 3, 3, 1], 0.1) as tf.Tensor4D, (tf.ones([1, 1, 3, 4]) as tf.Tensor4D), 1, 'same')],
  convT: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.conv2dTranspose(x, tf.fill([3, 3, 2, 3], 0.1) as tf.Tensor4D, [2, 10, 12, 2], 2, 'same')],
  resizeBilinear: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.image.resizeBilinear(x, [7, 9])],
  resizeBilinearAC: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.image.resizeBilinear(x, [7, 9], true)],
  resizeNearest: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.image.resizeNearestNeighbor(x, [9, 4])],
  resizeNearestHP: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.image.resizeNearestNeighbor(x, [9, 4], false, true)],
  batchNorm: [X, [4, 3], (x: tf.Tensor2D) => tf.batchNorm(x, F([0.1, 0.2, 0.3], [3]), F([1, 2, 3], [3]), F([0, 1, 0], [3]), F([1, 1, 2], [3]), 0.001)],
  lrn: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.localResponseNormalization(x, 2)],
  matMulT: [X, [4, 3], (x: tf.Tensor2D) => tf.matMul(x, x, true, false)],
  matMulBT: [X, [4, 3], (x: tf.Tensor2D) => tf.matMul(x, x, false, true)],
  dot3: [X, [2, 2, 3], (x: tf.Tensor3D) => tf.matMul(x, F(X, [2, 3, 2]))],
  fusedRelu: [X, [4, 3], (x: tf.Tensor2D) => tf.fused.matMul({ a: x, b: F(X, [4, 3]), transposeB: true, bias: F([1, -1, 0, 2], [4]), activation: 'relu' })],
  fusedConvRelu: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.fused.conv2d({ x, filter: tf.fill([3, 3, 3, 2], 0.1) as tf.Tensor4D, strides: 1, pad: 'same', bias: F([0.5, -2], [2]), activation: 'relu' })],
  fusedDw: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.fused.depthwiseConv2d({ x, filter: tf.fill([3, 3, 3, 1], 0.1) as tf.Tensor4D, strides: 1, pad: 'same', bias: F([1, 2, 3], [3]), activation: 'relu6' })],
  squaredDiff: [X, [4, 3], (x: tf.Tensor2D) => tf.squaredDifference(x, x.reverse(1))],
  clip: [X, [4, 3], (x: tf.Tensor2D) => tf.clipByValue(x, -1, 1)],
  gather: [X, [4, 3], (x: tf.Tensor2D) => tf.gather(x, tf.tensor1d([2, 0, 2], 'int32'))],
  unsortedSeg: [X, [4, 3], (x: tf.Tensor2D) => tf.unsortedSegmentSum(x, tf.tensor1d([1, 0, 1, 0], 'int32'), 2)],
  mirrorPadR: [X, [4, 3], (x: tf.Tensor2D) => tf.mirrorPad(x, [[1, 2], [2, 1]], 'reflect')],
  mirrorPadS: [X, [4, 3], (x: tf.Tensor2D) => tf.mirrorPad(x, [[1, 2], [2, 1]], 'symmetric')],
  padV2: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.pad(x, [[0, 0], [1, 2], [0, 1], [0, 0]], -1)],
  tile4: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.tile(x, [1, 2, 1, 2])],
  transpose4: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.transpose(x, [0, 3, 1, 2])],
  stridedSliceNeg: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.stridedSlice(x, [0, 4, 5, 0], [2, 0, 0, 3], [1, -2, -2, 1])],
  reverse4: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.reverse(x, [1, 3])],
  slice: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.slice(x, [1, 1, 2, 0], [1, 3, 3, 2])],
  sum3: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.sum(x, [1, 2])],
  maxAxes: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.max(x, [0, 3])],
  concat: [X, [4, 3], (x: tf.Tensor2D) => tf.concat([x, x.mul(2)], 1)],
  stack: [X, [4, 3], (x: tf.Tensor2D) => tf.stack([x, x.square()], 2)],
  where: [X, [4, 3], (x: tf.Tensor2D) => tf.where(tf.greater(x, 0), x.mul(3), x.square())],
  maximum: [X, [4, 3], (x: tf.Tensor2D) => tf.maximum(x, x.reverse(0))],
  sigmoidCE: [X, [4, 3], (x: tf.Tensor2D) => tf.losses.sigmoidCrossEntropy(F([1, 0, 1, 0, 0, 1, 1, 1, 0, 0, 1, 0], [4, 3]), x)],
  softmaxCE: [X, [4, 3], (x: tf.Tensor2D) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d([0, 2, 1, 1], 'int32'), 3), x)],
  huber: [X, [4, 3], (x: tf.Tensor2D) => tf.losses.huberLoss(F(X.map((v) => v * 0.5), [4, 3]), x)],
  cosineDist: [X, [4, 3], (x: tf.Tensor2D) => tf.losses.cosineDistance(F(X.map((v) => v * 0.5), [4, 3]), x, 1)],
  atanh: [X, [4, 3], (x: tf.Tensor2D) => tf.atanh(x.mul(0.1))],
  asinh: [X, [4, 3], tf.asinh],
  reciprocal: [X, [4, 3], (x: tf.Tensor2D) => tf.reciprocal(x.add(10))],
  log: [X, [4, 3], (x: tf.Tensor2D) => tf.log(x.abs().add(0.5))],
  abs: [X, [4, 3], tf.abs],
  mod: [X, [4, 3], (x: tf.Tensor2D) => tf.mod(x, F([0.7], [1]))],
  depthToSpace: [IMG.slice(0, 48), [2, 2, 1, 12], (x: tf.Tensor4D) => tf.depthToSpace(x, 2)],
  topk: [X, [4, 3], (x: tf.Tensor2D) => tf.topk(x, 2).values],
  batchToSpace: [IMG.slice(0, 48), [4, 2, 2, 3], (x: tf.Tensor4D) => tf.batchToSpaceND(x, [2, 2], [[0, 0], [0, 0]])],
  spaceToBatch: [IMG.slice(0, 48), [1, 4, 4, 3], (x: tf.Tensor4D) => tf.spaceToBatchND(x, [2, 2], [[0, 0], [0, 0]])],
  gatherND: [X, [4, 3], (x: tf.Tensor2D) => tf.gatherND(x, tf.tensor2d([[1, 2], [3, 0]], undefined, 'int32'))],
  broadcastTo: [X.slice(0, 3), [1, 3], (x: tf.Tensor2D) => tf.broadcastTo(x, [4, 3]).mul(F(X, [4, 3]))],
  oneMinus: [X, [4, 3], (x: tf.Tensor2D) => tf.sub(1, x).div(x.square().add(1))],
  cumprod: [X, [4, 3], (x: tf.Tensor2D) => tf.cumprod(x, 1, true, true)],
  einsum: [X, [4, 3], (x: tf.Tensor2D) => tf.einsum('ij,kj->ik', x, F(X.slice(0, 6), [2, 3]))],
  cropAndResize: [IMG, [2, 5, 6, 3], (x: tf.Tensor4D) => tf.image.cropAndResize(x, tf.tensor2d([[0.1, 0.2, 0.8, 0.7], [0.6, 0.1, 0.2, 0.9]]), [1, 0], [3, 4])],
  divNoNan: [X, [4, 3], (x: tf.Tensor2D) => tf.divNoNan(x, F([0, 2, -1], [3]))],
};

function forwardValues(op: () => tf.Tensor): { shape: number[]; dtype: string; values: Float32Array | Int32Array | Uint8Array } {
  return tf.tidy(() => {
    const y = op();
    return { shape: y.shape, dtype: y.dtype, values: y.dataSync() as Float32Array };
  });
}

function inputGradient([values, shape, op]: [number[], number[], (x: never) => tf.Tensor]): Float32Array {
  return tf.tidy(() => {
    const input = F(values, shape);
    const y = op(input as never);
    const w = tf.tensor(Array.from({ length: y.size }, (_, i) => Math.sin(i + 1)), y.shape);
    return tf.grad((z: tf.Tensor) => op(z as never).mul(w).sum())(input).dataSync() as Float32Array;
  });
}

/**
 * Left out on webgpu: floorMod computes floor(a / b) in float32, so at a decimal multiple
 * (4.2 mod 0.7) the quotient rounds up to 6 and the result is 0 where cpu, computing in
 * float64 on the float32 inputs, gives 0.7 (the inputs' exact remainder).
 */
const NOT_ON: Record<string, string[]> = { webgpu: ['mod'] };

for (const backend of ['wasm', 'webgpu']) describe(`backend: float32 ops on ${backend === 'wasm' ? 'shimmed wasm' : 'webgpu'} equal cpu`, function () {
  before(async function () {
    await useShimmedWasm();
    if (backend === 'webgpu') await webgpuOrSkip(this, 'float32 ops on webgpu');
  });
  after(() => tf.setBackend('cpu'));
  describe('forward values', () => {
    for (const [name, op] of Object.entries(FORWARD)) {
      if (NOT_ON[backend]?.includes(name)) continue;
      it(name, async () => {
        const cpu = await on('cpu', () => forwardValues(op));
        const wasm = forwardValues(op);
        expect([wasm.shape, wasm.dtype]).to.deep.equal([cpu.shape, cpu.dtype]);
        expect(relativeError(wasm.values, cpu.values)).to.be.below(1e-5);
      });
    }
  });
  describe('input gradients', () => {
    for (const [name, c] of Object.entries(GRADIENT)) {
      if (NOT_ON[backend]?.includes(name)) continue;
      it(name, async () => {
        const cpu = await on('cpu', () => inputGradient(c));
        const wasm = inputGradient(c);
        expect(wasm.length).to.equal(cpu.length);
        expect(relativeError(wasm, cpu)).to.be.below(1e-4);
      });
    }
  });
});
