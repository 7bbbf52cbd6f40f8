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
