import * as tf from '@tensorflow/tfjs';
import { runKernel } from '../engine-internals';
import { VERIFIED_WRONG_ON } from './avg-pool-grad';

/*
 * Gradients of gradient kernels, which tfjs 4.22 does not register, so a gradient of a
 * gradient (a gradient penalty, a physics-informed loss, meta-learning) through these
 * layers threw "gradient function not found".
 *
 * - Conv2DBackpropFilter, DepthwiseConv2dNativeBackpropFilter, Conv3DBackpropFilterV2 (dW,
 *   bilinear in x and dy): towards x, the input gradient of ddW; towards dy, the forward
 *   convolution of x with ddW.
 *
 * The others are linear in their dy; the gradient towards dy is the adjoint of that
 * linear map, and towards the other inputs:
 *
 * - EluGrad (dx = dy where y >= 0, dy (y + 1) elsewhere): towards dy the same map of
 *   ddx; towards y, ddx dy where y < 0 (d(y + 1)/dy = 1), 0 elsewhere.
 * - DepthwiseConv2dNativeBackpropInput: as tfjs does for Conv2DBackpropInput, a depthwise
 *   convolution of ddx towards dy and the filter gradient towards the filter.
 * - MaxPoolGrad (dy routed to each window's chosen element): towards dy, each window's ddx
 *   at that element, read off the kernel's own choice (its gradient of ones on a set of
 *   windows marks their elements, so ties resolve as the kernel resolved them) and summed
 *   per window by a depthwise convolution of ones. Overlapping windows (3x3 at stride 2)
 *   are taken in groups that do not overlap: the windows whose positions are equal modulo
 *   ceil(window / stride) on every axis, one kernel call and one window sum per group.
 *   Towards the input and output: zero (piecewise constant).
 * - MaxPool3DGrad, AvgPool3DGrad: the same in 3-D (window sums by a conv3d whose filter is
 *   the identity across channels).
 * - ResizeBilinearGrad, ResizeNearestNeighborGrad: adjoints of the resizes, so towards dy
 *   the resize itself of ddx; towards the images, zero.
 * - AvgPoolGrad: towards dy, the window sums of ddx over the divisor the kernel used (the
 *   full window on cpu, wasm and webgpu, whose kernels divide by it; tapfit's border fix
 *   scales dy before them, avg-pool-grad.ts), or an average pool where the kernel divides
 *   by the real count (TensorFlow's). Towards the input: zero.
 */

type PoolAttrs = { filterSize: number | number[]; strides: number | number[]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };

/** A pool attribute per spatial axis (2 for 2-D pools, 3 for 3-D). */
const perAxis = (v: number | number[], axes: number): number[] => (Array.isArray(v) ? v : new Array<number>(axes).fill(v));

/**
 * Each pool window's sum of x per channel, times value: a depthwise convolution with a
 * constant window for [B, H, W, C], a conv3d whose filter is the identity across channels
 * for [B, D, H, W, C].
 */
function windowSums(x: tf.Tensor, a: PoolAttrs, value: number): tf.Tensor {
  const C = x.shape[x.rank - 1];
  if (x.rank === 4) {
    const [fh, fw] = perAxis(a.filterSize, 2);
    return tf.depthwiseConv2d(x as tf.Tensor4D, tf.fill([fh, fw, C, 1], value) as tf.Tensor4D, a.strides as [number, number], a.pad, 'NHWC', 1, a.dimRoundingMode);
  }
  const [fd, fh, fw] = perAxis(a.filterSize, 3);
  const filter = tf.tidy(() => tf.reshape(tf.tile(tf.mul(tf.eye(C), value), [fd * fh * fw, 1]), [fd, fh, fw, C, C]) as tf.Tensor5D);
  return tf.conv3d(x as tf.Tensor5D, filter, a.strides as [number, number, number], a.pad as 'valid' | 'same', 'NDHWC', 1);
}

/** MaxPoolGrad or MaxPool3DGrad's gradient: towards dy, each window's ddx at the element the kernel chose; zero towards the pooled tensors. */
function maxPoolGradGradient(kernelName: 'MaxPoolGrad' | 'MaxPool3DGrad', axes: number): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['dy', 'input', 'output'],
    gradFunc: (ddx, [dy, input, output], attrs) => {
      const a = attrs as unknown as PoolAttrs;
      const [window, strides] = [perAxis(a.filterSize, axes), perAxis(a.strides, axes)];
      // Windows whose positions are equal modulo these on every axis do not overlap.
      const groups = window.map((w, i) => Math.ceil(w / strides[i]));
      return {
        dy: () =>
          tf.tidy(() => {
            const parts = cartesian(groups).map((offset) => {
              const mask = groups.every((g) => g === 1) ? tf.onesLike(dy) : groupMask(dy, groups, offset);
              const chosen = runKernel(kernelName, { dy: mask, input, output }, attrs as tf.NamedAttrMap) as tf.Tensor;
              const sums = windowSums(tf.mul(ddx as tf.Tensor, chosen), a, 1);
              return groups.every((g) => g === 1) ? sums : tf.mul(sums, mask);
            });
            return parts.reduce((sum, part) => tf.add(sum, part)); // not addN: webgpu's takes at most 7 inputs
          }),
        input: () => tf.zerosLike(input),
        output: () => tf.zerosLike(output),
      };
    },
  };
}

/** Every combination of 0..n-1 per entry of `sizes` ([2, 2] -> [0, 0], [0, 1], [1, 0], [1, 1]). */
function cartesian(sizes: number[]): number[][] {
  return sizes.reduce<number[][]>((acc, n) => acc.flatMap((head) => Array.from({ length: n }, (_, k) => [...head, k])), [[]]);
}

/** 1 on the pool windows (positions of dy, [B, ...spatial, C]) equal to `offset` modulo `groups` on every spatial axis, else 0. */
function groupMask(dy: tf.Tensor, groups: number[], offset: number[]): tf.Tensor {
  const sizes = dy.shape.slice(1, 1 + groups.length);
  const values = new Float32Array(sizes.reduce((p, s) => p * s, 1));
  for (let flat = 0; flat < values.length; flat++) {
    let rest = flat;
    let on = 1;
    for (let i = sizes.length - 1; i >= 0; i--) {
      if ((rest % sizes[i]) % groups[i] !== offset[i]) on = 0;
      rest = Math.floor(rest / sizes[i]);
    }
    values[flat] = on;
  }
  return tf.mul(tf.onesLike(dy), tf.reshape(tf.tensor(values), [1, ...sizes, 1]));
}

/** AvgPoolGrad or AvgPool3DGrad's gradient: towards dy, ddx's window sums over the divisor the kernel used; zero towards the input. */
function avgPoolGradGradient(kernelName: 'AvgPoolGrad' | 'AvgPool3DGrad', axes: number): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['input'],
    gradFunc: (ddx, [input], attrs) => {
      const a = attrs as unknown as PoolAttrs;
      const windowSize = perAxis(a.filterSize, axes).reduce((p, f) => p * f, 1);
      const averaged = () =>
        axes === 2
          ? tf.avgPool(ddx as tf.Tensor4D, a.filterSize as [number, number], a.strides as [number, number], a.pad)
          : tf.avgPool3d(ddx as tf.Tensor5D, a.filterSize as [number, number, number], a.strides as [number, number, number], a.pad, a.dimRoundingMode);
      return {
        dy: () => (VERIFIED_WRONG_ON.has(tf.getBackend()) ? windowSums(ddx as tf.Tensor, a, 1 / windowSize) : averaged()),
        input: () => tf.zerosLike(input),
      };
    },
  };
}

type ConvAttrs = { strides: number | number[]; pad: 'valid' | 'same' | number; dilations?: number | [number, number]; dataFormat?: 'NHWC' | 'NCHW'; dimRoundingMode?: 'floor' | 'round' | 'ceil' };

/** The attributes a filter gradient shares with the input gradient that undoes it, with the input's shape. */
const inputGradAttrs = (a: ConvAttrs & { filterShape?: number[] }, inputShape: number[]): tf.NamedAttrMap => {
  const { filterShape: _unused, ...rest } = a;
  return { ...(rest as tf.NamedAttrMap), inputShape };
};

/**
 * A filter gradient's gradient (dW is bilinear in x and dy), for a gradient through a
 * weight update (MAML and other meta-learning): towards x, the input gradient of ddW;
 * towards dy, the forward convolution of x with ddW (TensorFlow's forms).
 */
function filterGradGradient(kernelName: string, inputGradKernel: string, forward: (x: tf.Tensor, ddw: tf.Tensor, a: ConvAttrs) => tf.Tensor): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['x', 'dy'],
    gradFunc: (ddw, [x, dy], attrs) => {
      const a = attrs as unknown as ConvAttrs & { filterShape: number[] };
      return {
        x: () => runKernel(inputGradKernel, { dy, filter: ddw as tf.Tensor }, inputGradAttrs(a, x.shape)) as tf.Tensor,
        dy: () => forward(x, ddw as tf.Tensor, a),
      };
    },
  };
}

export const SECOND_ORDER_GRADIENTS: tf.GradConfig[] = [
  filterGradGradient('Conv2DBackpropFilter', 'Conv2DBackpropInput', (x, ddw, a) => tf.conv2d(x as tf.Tensor4D, ddw as tf.Tensor4D, a.strides as [number, number], a.pad, a.dataFormat ?? 'NHWC', 1, a.dimRoundingMode)),
  filterGradGradient('DepthwiseConv2dNativeBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', (x, ddw, a) => tf.depthwiseConv2d(x as tf.Tensor4D, ddw as tf.Tensor4D, a.strides as [number, number], a.pad, 'NHWC', a.dilations ?? 1, a.dimRoundingMode)),
  filterGradGradient('Conv3DBackpropFilterV2', 'Conv3DBackpropInputV2', (x, ddw, a) => tf.conv3d(x as tf.Tensor5D, ddw as tf.Tensor5D, a.strides as [number, number, number], a.pad as 'valid' | 'same')),
  {
    kernelName: 'EluGrad',
    inputsToSave: ['dy', 'y'],
    gradFunc: (ddx, [dy, y]) => ({
      dy: () => runKernel('EluGrad', { dy: ddx as tf.Tensor, y }, {}) as tf.Tensor,
      y: () => tf.tidy(() => tf.where(tf.less(y, 0), tf.mul(ddx as tf.Tensor, dy), tf.zerosLike(y))),
    }),
  },
  {
    kernelName: 'DepthwiseConv2dNativeBackpropInput',
    inputsToSave: ['dy', 'filter'],
    gradFunc: (ddx, [dy, filter], attrs) => {
      const { strides, pad, dilations, dimRoundingMode } = attrs as unknown as { strides: number | [number, number]; pad: 'valid' | 'same' | number; dilations: number | [number, number]; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
      return {
        dy: () => tf.depthwiseConv2d(ddx as tf.Tensor4D, filter as tf.Tensor4D, strides, pad, 'NHWC', dilations, dimRoundingMode),
        filter: () => runKernel('DepthwiseConv2dNativeBackpropFilter', { x: ddx as tf.Tensor, dy }, { strides, pad, dilations, filterShape: filter.shape, ...(dimRoundingMode ? { dimRoundingMode } : {}) }) as tf.Tensor,
      };
    },
  },
  maxPoolGradGradient('MaxPoolGrad', 2),
  maxPoolGradGradient('MaxPool3DGrad', 3),
  avgPoolGradGradient('AvgPoolGrad', 2),
  avgPoolGradGradient('AvgPool3DGrad', 3),
  // Resizes' gradients are the adjoints of the resizes, so theirs are the resizes again.
  ...(['ResizeBilinearGrad', 'ResizeNearestNeighborGrad'] as const).map((kernelName) => ({
    kernelName,
    inputsToSave: ['images', 'dy'],
    gradFunc: (ddx: tf.Tensor | tf.Tensor[], [images, dy]: tf.Tensor[], attrs: tf.NamedAttrMap) => {
      const { alignCorners, halfPixelCenters } = attrs as unknown as { alignCorners: boolean; halfPixelCenters: boolean };
      const size = dy.shape.slice(1, 3) as [number, number];
      const resize = kernelName === 'ResizeBilinearGrad' ? tf.image.resizeBilinear : tf.image.resizeNearestNeighbor;
      return { dy: () => resize(ddx as tf.Tensor4D, size, alignCorners, halfPixelCenters), images: () => tf.zerosLike(images) };
    },
  })),
];
