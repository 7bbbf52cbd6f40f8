import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { directionalError, GradCase, gradientsWithFiniteDifferences, GradResult, ints, on, randn, relativeError } from './helpers';

/*
 * Every case: gradients of L = sum(w * f(x)) on the backend under test (shimmed
 * wasm, webgpu) against cpu (relative error < 1e-3, measured against the largest
 * cpu gradient entry),
 * and against central finite differences along a random direction on both
 * backends. The finite differences run float32 forward passes, so their
 * tolerance is looser (FD_TOL, relative): truncation ~eps^2 for smooth ops,
 * plus float32 round-off of each output amplified by 1/eps. Piecewise-linear
 * ops (relu, max pooling, nearest resize, dilation2d) are exact unless the
 * step crosses a kink, which the small eps and these seeds avoid; the cpu
 * comparison carries the tight check. Most cases pass FD at ~1e-5.
 */
export const VS_CPU_TOL = 1e-3;
export const FD_TOL = 2e-3;
export const EPS = 1e-3;

export type Case = GradCase & {
  eps?: number;
  fdTol?: number;
  /** Skip finite differences (ties make the function non-differentiable there). */
  fd?: false;
  /** Skip the engine's per-kernel leak check: it misreads the tensors a tf.customGrad op saves as leaks. */
  kernelLeakCheck?: false;
};

const conv2dCases: Record<string, Case> = {};
const convVariants: Array<[string, number | [number, number], 'same' | 'valid' | tf.backend_util.ExplicitPadding, number | [number, number], number[]]> = [
  ['same, stride 1', 1, 'same', 1, [2, 7, 8, 3]],
  ['same, stride 2', 2, 'same', 1, [2, 7, 8, 3]],
  ['valid, stride 1', 1, 'valid', 1, [2, 7, 8, 3]],
  ['valid, stride 2 (leftover rows)', 2, 'valid', 1, [2, 8, 9, 3]],
  ['explicit padding, stride [2,1]', [2, 1], [[0, 0], [2, 0], [1, 3], [0, 0]], 1, [2, 7, 8, 3]],
  ['same, dilation 2', 1, 'same', 2, [2, 9, 8, 3]],
  ['valid, dilation [2,1]', 1, 'valid', [2, 1], [2, 9, 8, 3]],
];
for (const [name, strides, pad, dilation, xShape] of convVariants) {
  conv2dCases[`conv2d ${name}`] = {
    inputs: [randn(xShape, 1), randn([3, 3, 3, 4], 2)],
    forward: (x, f) => tf.conv2d(x as tf.Tensor4D, f as tf.Tensor4D, strides, pad, 'NHWC', dilation),
  };
  conv2dCases[`depthwiseConv2d ${name}, multiplier 2`] = {
    inputs: [randn(xShape, 3), randn([3, 3, 3, 2], 4)],
    forward: (x, f) => tf.depthwiseConv2d(x as tf.Tensor4D, f as tf.Tensor4D, strides, pad, 'NHWC', dilation),
  };
}

/**
 * A 'same' 3-D convolution as plugin-revsilo computes it: for each kernel depth a batch
 * of 2-D convolutions of depth slices (sliced and padded as rank-3 [N, D, H*W*C] views).
 */
function conv3dBySlices(x: tf.Tensor, k: number, stride: number, conv2d: (slices: tf.Tensor4D, kd: number) => tf.Tensor): tf.Tensor {
  const [n, d, h, w, c] = x.shape;
  const depthOut = Math.ceil(d / stride);
  const total = Math.max((depthOut - 1) * stride + k - d, 0);
  const padded = tf.pad(tf.reshape(x, [n, d, h * w * c]), [[0, 0], [Math.floor(total / 2), total - Math.floor(total / 2)], [0, 0]]);
  const want = depthOut * stride;
  let sum: tf.Tensor | null = null;
  for (let kd = 0; kd < k; kd++) {
    // Depths kd, kd + stride, ...: a window of depthOut * stride (padded at the end), the first of each group of `stride`.
    const have = Math.min(want, d + total - kd);
    let window = tf.slice(padded, [0, kd, 0], [n, have, h * w * c]);
    if (have < want) window = tf.pad(window, [[0, 0], [0, want - have], [0, 0]]);
    const picked = stride === 1 ? window : tf.slice(tf.reshape(window, [n, depthOut, stride * h * w * c]), [0, 0, 0], [n, depthOut, h * w * c]);
    const y = conv2d(tf.reshape(picked, [n * depthOut, h, w, c]), kd);
    sum = sum ? tf.add(sum, y) : y;
  }
  const [, ho, wo, m] = sum!.shape;
  return tf.reshape(sum!, [n, depthOut, ho, wo, m]);
}

/** [N, H, W, C] -> [N, H/b, W/b, b*b*C] and back: rank-6 reshapes and transposes. */
const spaceToDepth = (x: tf.Tensor, b: number) => {
  const [n, h, w, c] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [n, h / b, b, w / b, b, c]), [0, 1, 3, 2, 4, 5]), [n, h / b, w / b, b * b * c]);
};
const depthToSpace = (x: tf.Tensor, b: number) => {
  const [n, h, w, cb] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [n, h, w, b, b, cb / (b * b)]), [0, 1, 3, 2, 4, 5]), [n, h * b, w * b, cb / (b * b)]);
};

/**
 * The layers plugin-revsilo builds its reversible blocks from (2-D MBConv and RevSilo,
 * the 3-D U-Net's MBConv, convolutions and upsampling, its norms), written with the same
 * tf ops so that core's tests need not depend on the plugin.
 */
const revsiloCases: Record<string, Case> = {
  'depthwiseConv2d multiplier 1: 3x3 stride 1, 5x5 stride 2, 7x7 stride 4 (MBConv, RevSilo downsampling)': {
    inputs: [randn([2, 8, 8, 3], 1), randn([3, 3, 3, 1], 2), randn([5, 5, 3, 1], 3), randn([7, 7, 3, 1], 4)],
    forward: (x, f3, f5, f7) =>
      tf.concat([
        tf.depthwiseConv2d(x as tf.Tensor4D, f3 as tf.Tensor4D, 1, 'same').flatten(),
        tf.depthwiseConv2d(x as tf.Tensor4D, f5 as tf.Tensor4D, 2, 'same').flatten(),
        tf.depthwiseConv2d(x as tf.Tensor4D, f7 as tf.Tensor4D, 4, 'same').flatten(),
      ]),
  },
  'depthwise 3-D conv as depthwiseConv2d of depth slices (3-D MBConv)': {
    inputs: [randn([2, 4, 4, 4, 3], 1), randn([3, 3, 3, 3], 2)],
    forward: (x, f) => conv3dBySlices(x, 3, 1, (slices, kd) => tf.depthwiseConv2d(slices, tf.reshape(tf.slice(f, [kd, 0, 0, 0], [1, 3, 3, 3]), [3, 3, 3, 1]) as tf.Tensor4D, 1, 'same')),
  },
  'conv3d as conv2d of depth slices, stride 2 (3-D U-Net downsampling)': {
    inputs: [randn([1, 4, 4, 4, 2], 1), randn([3, 3, 3, 2, 3], 2)],
    forward: (x, f) => conv3dBySlices(x, 3, 2, (slices, kd) => tf.conv2d(slices, tf.reshape(tf.slice(f, [kd, 0, 0, 0, 0], [1, 3, 3, 2, 3]), [3, 3, 2, 3]) as tf.Tensor4D, 2, 'same')),
  },
  'conv3d same, stride 2, block-diagonal filter (depthwise 3-D as one conv3d)': {
    inputs: [randn([1, 4, 6, 4, 3], 1), randn([3, 3, 3, 3], 2)],
    forward: (x, f) => tf.conv3d(x as tf.Tensor5D, tf.mul(tf.reshape(f, [3, 3, 3, 3, 1]), tf.reshape(tf.eye(3), [1, 1, 1, 3, 3])) as tf.Tensor5D, 2, 'same'),
  },
  'space-to-depth and depth-to-space (RevBiFPN stem: rank-6 transposes)': {
    inputs: [randn([2, 4, 6, 3], 1)],
    forward: (x) => {
      const s = spaceToDepth(x, 2);
      return tf.concat([s.flatten(), depthToSpace(tf.tanh(s), 2).flatten()]);
    },
  },
  '2x2x2 transposed conv as matMul and rank-6 transposes (3-D U-Net upsampling)': {
    inputs: [randn([1, 2, 3, 2, 3], 1), randn([3, 16], 2)],
    forward: (x, w) => {
      const [n, d, h, wd, cin] = x.shape;
      const y = tf.reshape(tf.matMul(tf.reshape(x, [-1, cin]), w as tf.Tensor2D), [n, d, h, wd, 16]);
      const depth = tf.reshape(tf.transpose(tf.reshape(y, [n * d, h * wd, 2, 8]), [0, 2, 1, 3]), [n * d * 2, h, wd, 2, 2, 2]);
      return tf.reshape(tf.transpose(depth, [0, 1, 3, 2, 4, 5]), [n, 2 * d, 2 * h, 2 * wd, 2]);
    },
  },
  'resizeBilinear by integer factors 2 and 4 (RevSilo upsampling)': {
    inputs: [randn([2, 2, 3, 4], 1)],
    forward: (x) => tf.concat([tf.image.resizeBilinear(x as tf.Tensor4D, [4, 6]).flatten(), tf.image.resizeBilinear(x as tf.Tensor4D, [8, 12]).flatten()]),
  },
  'group norm over [N, G, positions] of a 5-D tensor, then hardswish': {
    inputs: [randn([2, 2, 3, 2, 6], 1), randn([6], 2), randn([6], 3)],
    forward: (x, gamma, beta) => {
      const laid = tf.reshape(tf.transpose(tf.reshape(x, [2, -1, 3, 2]), [0, 2, 1, 3]), [2, 3, -1]);
      const { mean, variance } = tf.moments(laid, 2, true);
      const normalised = tf.reshape(tf.transpose(tf.reshape(tf.mul(tf.sub(laid, mean), tf.rsqrt(tf.add(variance, 1e-3))), [2, 3, -1, 2]), [0, 2, 1, 3]), [-1, 6]);
      const y = tf.add(tf.mul(normalised, gamma), beta);
      return tf.mul(y, tf.div(tf.relu6(tf.add(y, 3)), 6));
    },
  },
};

/** Every gradient the plugins rely on, by name (also run on webgpu). */
export const cases: Record<string, Case> = {
  'dense: matMul + bias + relu': {
    inputs: [randn([6, 5], 1), randn([5, 4], 2), randn([4], 3)],
    forward: (x, w, b) => tf.relu(tf.add(tf.matMul(x, w), b)),
  },
  'fused.matMul with bias and relu (the path tfjs-layers Dense takes)': {
    inputs: [randn([6, 5], 1), randn([5, 4], 2), randn([4], 3)],
    forward: (x, w, b) => tf.fused.matMul({ a: x as tf.Tensor2D, b: w as tf.Tensor2D, bias: b, activation: 'relu' }),
  },
  'matMul transposeA': { inputs: [randn([5, 6], 1), randn([5, 4], 2)], forward: (a, b) => tf.matMul(a, b, true, false) },
  'matMul transposeB': { inputs: [randn([6, 5], 1), randn([4, 5], 2)], forward: (a, b) => tf.matMul(a, b, false, true) },
  'matMul both transposed, batched': { inputs: [randn([2, 5, 6], 1), randn([2, 4, 5], 2)], forward: (a, b) => tf.matMul(a, b, true, true) },
  ...conv2dCases,
  ...revsiloCases,
  // sigmoid rather than relu: 288 outputs near zero would cross relu's kink within eps.
  'fused.conv2d with bias and sigmoid': {
    inputs: [randn([2, 6, 6, 3], 1), randn([3, 3, 3, 4], 2), randn([4], 3)],
    forward: (x, f, b) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: f as tf.Tensor4D, strides: 1, pad: 'same', bias: b, activation: 'sigmoid' }),
  },
  'separableConv2d': {
    inputs: [randn([2, 7, 7, 3], 1), randn([3, 3, 3, 2], 2), randn([1, 1, 6, 4], 3)],
    forward: (x, d, p) => tf.separableConv2d(x as tf.Tensor4D, d as tf.Tensor4D, p as tf.Tensor4D, 1, 'same'),
  },
  'conv2dTranspose stride 2': {
    inputs: [randn([2, 4, 4, 5], 1), randn([3, 3, 3, 5], 2)],
    forward: (x, f) => tf.conv2dTranspose(x as tf.Tensor4D, f as tf.Tensor4D, [2, 8, 8, 3], 2, 'same'),
  },
  'conv3d same, stride 1': {
    inputs: [randn([2, 4, 5, 5, 2], 1), randn([2, 3, 3, 2, 3], 2)],
    forward: (x, f) => tf.conv3d(x as tf.Tensor5D, f as tf.Tensor5D, 1, 'same'),
  },
  'conv3d valid, stride [1,2,2]': {
    inputs: [randn([2, 4, 6, 5, 2], 1), randn([2, 3, 3, 2, 3], 2)],
    forward: (x, f) => tf.conv3d(x as tf.Tensor5D, f as tf.Tensor5D, [1, 2, 2], 'valid'),
  },
  'maxPool 2x2 stride 2 (wasm composite)': { inputs: [randn([2, 6, 6, 3], 1)], forward: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid') },
  'maxPool 2x2 stride 2, valid with a leftover row': { inputs: [randn([2, 7, 6, 3], 2)], forward: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid') },
  'maxPool 2x2 stride 2, same on odd sizes': { inputs: [randn([2, 7, 5, 3], 3)], forward: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'same') },
  'maxPool 2x2 stride 2, all-negative windows': { inputs: [{ ...randn([2, 4, 4, 2], 4), values: Float32Array.from(randn([2, 4, 4, 2], 4).values, (v) => -1 - Math.abs(v)) }], forward: (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid') },
  'maxPool 2x2 stride 2 after relu (zero ties: first in the window wins)': {
    inputs: [randn([2, 6, 6, 3], 5)],
    forward: (x) => tf.maxPool(tf.relu(x) as tf.Tensor4D, 2, 2, 'valid'),
    fd: false,
  },
  'maxPool 3x3 stride 2 same (overlapping: cpu bridge)': { inputs: [randn([2, 7, 7, 3], 1)], forward: (x) => tf.maxPool(x as tf.Tensor4D, 3, 2, 'same') },
  'avgPool 2x2 stride 2 valid': { inputs: [randn([2, 6, 6, 3], 1)], forward: (x) => tf.avgPool(x as tf.Tensor4D, 2, 2, 'valid') },
  'avgPool 3x3 stride 2 same': { inputs: [randn([2, 7, 7, 3], 1)], forward: (x) => tf.avgPool(x as tf.Tensor4D, 3, 2, 'same') },
  'maxPool3d': { inputs: [randn([2, 4, 4, 4, 2], 1)], forward: (x) => tf.maxPool3d(x as tf.Tensor5D, 2, 2, 'valid') },
  'maxPool3d, all-negative windows': { inputs: [{ ...randn([1, 2, 4, 4, 2], 2), values: Float32Array.from(randn([1, 2, 4, 4, 2], 2).values, (v) => -1 - Math.abs(v)) }], forward: (x) => tf.maxPool3d(x as tf.Tensor5D, 2, 2, 'valid') },
  'avgPool3d': { inputs: [randn([2, 4, 4, 4, 2], 1)], forward: (x) => tf.avgPool3d(x as tf.Tensor5D, 2, 1, 'same') },
  'batchNorm with given statistics': {
    inputs: [randn([4, 3, 3, 5], 1), randn([5], 2), { ...randn([5], 3), values: Float32Array.from(randn([5], 3).values, (v) => 0.5 + v * v) }, randn([5], 4), randn([5], 5)],
    forward: (x, m, v, o, s) => tf.batchNorm(x, m, v, o, s, 1e-3),
  },
  'training batchNorm (moments of the batch)': {
    inputs: [randn([6, 3, 3, 4], 1), randn([4], 2), randn([4], 3)],
    forward: (x, gamma, beta) => {
      const { mean, variance } = tf.moments(x, [0, 1, 2]);
      return tf.batchNorm(x, mean, variance, beta, gamma, 1e-3);
    },
  },
  'resizeBilinear batch 2': { inputs: [randn([2, 3, 4, 2], 1)], forward: (x) => tf.image.resizeBilinear(x as tf.Tensor4D, [7, 9]) },
  'resizeBilinear alignCorners batch 2': { inputs: [randn([2, 3, 4, 2], 1)], forward: (x) => tf.image.resizeBilinear(x as tf.Tensor4D, [7, 9], true) },
  'resizeNearestNeighbor batch 2 (cpu kernel fixed)': { inputs: [randn([2, 3, 4, 2], 1)], forward: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [7, 9]) },
  'resizeNearestNeighbor alignCorners batch 2': { inputs: [randn([2, 3, 4, 2], 1)], forward: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [7, 9], true) },
  'resizeNearestNeighbor halfPixelCenters, downscale, batch 3': {
    inputs: [randn([3, 5, 7, 2], 1)],
    forward: (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [3, 4], false, true),
  },
  'gather (embedding lookup, repeated ids)': {
    inputs: [randn([10, 4], 1), ints([6], [1, 3, 3, 0, 9, 3])],
    forward: (table, ids) => tf.gather(table, ids),
  },
  'unsortedSegmentSum': {
    inputs: [randn([7, 3], 1), ints([7], [0, 2, 2, 1, 0, 4, 2])],
    forward: (x, seg) => tf.unsortedSegmentSum(x, seg as tf.Tensor1D, 5),
  },
  'dilation2d (bridged to cpu)': {
    inputs: [randn([2, 5, 5, 2], 1), randn([2, 2, 2], 2, 0.3)],
    forward: (x, f) => tf.dilation2d(x as tf.Tensor4D, f as tf.Tensor3D, 1, 'same'),
    eps: 1e-4, // max-plus: keep the shift below the gaps between window values
  },
  'concat, slice, pad, transpose': {
    inputs: [randn([2, 3, 4, 2], 1), randn([2, 3, 4, 1], 2)],
    forward: (x, y) => tf.transpose(tf.pad(tf.slice(tf.concat([x, y], 3), [0, 1, 0, 0], [2, 2, 4, 3]), [[0, 0], [1, 0], [0, 2], [0, 0]]), [0, 2, 1, 3]),
  },
  // Rank 5 is what conv3d activations have; webgpu's stock pad (the gradient of slice) fails there.
  'slice, pad, reverse, cumsum and where at rank 5': {
    inputs: [randn([2, 3, 4, 3, 2], 1), ints([2, 4, 4, 4, 2], Array.from({ length: 256 }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0))],
    forward: (x, mask) => {
      const cut = tf.pad(tf.slice(x, [0, 1, 0, 1, 0], [2, 2, 4, 2, 2]), [[0, 0], [1, 1], [0, 0], [2, 0], [0, 0]]);
      return tf.where(tf.cast(mask, 'bool'), tf.cumsum(tf.reverse(cut, [1, 3]), 2), tf.mul(cut, 0.3));
    },
  },
  // tfjs's own cumsum gradient transposes its result when the axis is not the last (every backend).
  'cumsum along the first axis': { inputs: [randn([3, 3], 1)], forward: (x) => tf.cumsum(x, 0) },
  // The gradient runs cumsum in reverse; webgpu's reverse shader is cached per op, not per axis length.
  'cumsum of two lengths, exclusive and reverse': {
    inputs: [randn([3, 5], 1), randn([4, 3], 2)],
    forward: (a, b) => tf.concat([tf.cumsum(a, 1, true, true).flatten(), tf.cumsum(b, 1).flatten()]),
  },
  'reductions: sum, mean, max, min, prod, logSumExp': {
    inputs: [randn([3, 4, 5], 1)],
    forward: (x) => tf.concat([
      tf.sum(x, 1).flatten(), tf.mean(x, [0, 2]).flatten(), tf.max(x, 2).flatten(), tf.min(x, 0).flatten(),
      tf.prod(tf.slice(x, [0, 0, 0], [3, 4, 2]), 1).flatten(), tf.logSumExp(x, 1).flatten(),
    ]),
  },
  'dropout (seeded mask, the same on every backend)': { inputs: [randn([6, 8], 1)], forward: (x) => tf.dropout(x, 0.3, undefined, 7) },
  relu: { inputs: [randn([40], 1)], forward: (x) => tf.relu(x) },
  // y reaches 6 here: float32 round-off of y over a 2e-3 step is ~1e-4 per element, so use a wider step.
  relu6: { inputs: [randn([40], 1, 4)], forward: (x) => tf.relu6(x), eps: 1e-2 },
  sigmoid: { inputs: [randn([40], 1)], forward: (x) => tf.sigmoid(x) },
  tanh: { inputs: [randn([40], 1)], forward: (x) => tf.tanh(x) },
  elu: { inputs: [randn([40], 1)], forward: (x) => tf.elu(x) },
  leakyRelu: { inputs: [randn([40], 1)], forward: (x) => tf.leakyRelu(x, 0.1) },
  selu: { inputs: [randn([40], 1)], forward: (x) => tf.selu(x) },
  'prelu (input and alpha)': { inputs: [randn([8, 5], 1), randn([5], 2, 0.2)], forward: (x, a) => tf.prelu(x, a) },
  'softmax cross-entropy (tf.losses)': {
    inputs: [randn([6, 5], 1), { ...randn([6, 5], 2), values: oneHotRows(6, 5), differentiate: false }],
    forward: (logits, labels) => tf.losses.softmaxCrossEntropy(labels, logits),
    kernelLeakCheck: false,
  },
  'logSoftmax + NLL': {
    inputs: [randn([6, 5], 1), { ...randn([6, 5], 2), values: oneHotRows(6, 5), differentiate: false }],
    forward: (logits, labels) => tf.neg(tf.mean(tf.sum(tf.mul(labels, tf.logSoftmax(logits)), -1))),
    kernelLeakCheck: false,
  },
  'sigmoid cross-entropy': {
    inputs: [randn([6, 5], 1), { shape: [6, 5], values: Float32Array.from({ length: 30 }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0), differentiate: false }],
    forward: (logits, labels) => tf.losses.sigmoidCrossEntropy(labels, logits),
  },
};

function oneHotRows(rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) out[r * cols + ((r * 3 + 1) % cols)] = 1;
  return out;
}

/**
 * Gradients of case `c` on the active backend against cpu (relative error below
 * VS_CPU_TOL) and, on both, against central finite differences; no tensor leaks.
 */
export async function expectGradientsMatchCpu(c: Case): Promise<void> {
  const name = tf.getBackend();
  const before = tf.memory().numTensors;
  const here: GradResult = gradientsWithFiniteDifferences(c, c.eps ?? EPS);
  const cpu: GradResult = await on('cpu', () => gradientsWithFiniteDifferences(c, c.eps ?? EPS));
  expect(tf.memory().numTensors, 'tensors leaked').to.equal(before);
  here.grads.forEach((g, i) => {
    expect(relativeError(g, cpu.grads[i]), `input ${i}: ${name} vs cpu`).to.be.below(VS_CPU_TOL);
  });
  if (c.fd === false) return;
  for (const [backend, r] of [[name, here], ['cpu', cpu]] as const) {
    r.directional.forEach((d, i) => {
      expect(directionalError(d), `${backend} input ${i}: analytic ${d.analytic} vs finite difference ${d.numeric}`).to.be.below(c.fdTol ?? FD_TOL);
    });
  }
}

/**
 * Registers every case as a mocha test on the backend `select` makes current (it may
 * skip the suite), with the engine's per-kernel leak check on: composites must free
 * their intermediates.
 */
export function describeGradientCases(title: string, select: (ctx: Mocha.Context) => Promise<void>): void {
  describe(title, function () {
    let wasTest: boolean;
    before(async function () {
      await select(this);
      wasTest = tf.env().getBool('IS_TEST');
    });
    afterEach(() => tf.env().set('IS_TEST', wasTest));
    after(() => tf.setBackend('cpu'));

    for (const [name, c] of Object.entries(cases)) {
      it(name, async () => {
        tf.env().set('IS_TEST', c.kernelLeakCheck !== false);
        await expectGradientsMatchCpu(c);
      });
    }
  });
}
