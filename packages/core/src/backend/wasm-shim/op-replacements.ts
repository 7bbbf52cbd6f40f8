import * as tf from '@tensorflow/tfjs';
import { tfjsCoreExports } from '../engine-internals';
import type { Overrides } from './overrides';

/*
 * Ops of tfjs-core 4.22 fixed at the op: composed in JavaScript (no kernel to replace), or
 * whose gradient ignores an argument (so a kernel fix would leave the backward wrong). The
 * op is replaced on tfjs-core's exports, which `tf.*` and tfjs-layers read on every call,
 * and so is its chained tensor method (`x.softmax()`), which calls tfjs-core's internal op
 * directly (Overrides puts the originals back). Each keeps the original where it was right.
 *
 * - softmax, logSoftmax: only the last axis, and -1 as the only negative one ("not yet
 *   supported" otherwise, so a Keras Softmax(axis=1) layer could not run): any axis, by
 *   moving it last and back.
 * - divNoNan: div then where(b == 0, 0, .), so the gradient at b = 0 is dy 0 / 0 = NaN
 *   and poisons every weight: the divisor is replaced by 1 where it is 0 before dividing.
 * - norm with two axes (a matrix norm, p = 1 or +-Infinity): the second reduction's axis
 *   assumed axis[0] < axis[1] (wrong values otherwise) and negative axes threw.
 * - depthwiseConv2d with dataFormat 'NCHW': cpu returned NaN, wasm other wrong values
 *   (webgpu was right), and tfjs's gradient ignores the format on every backend; conv2d
 *   with 'NCHW' throws on wasm (ConvLSTM2D with channelsFirst calls it): both run as the
 *   NHWC convolution between transposes, so the gradients follow.
 * - batchNorm (and its 2d/3d/4d forms) without a scale or an offset: the kernel's inputs
 *   then hold undefined, which the tape cannot follow, so any gradient through it threw
 *   ("Cannot read properties of undefined"): a missing scale is ones, a missing offset
 *   zeros (the same values).
 */

type Softmax = (logits: tf.Tensor | tf.TensorLike, dim?: number) => tf.Tensor;
type Binary = (a: tf.Tensor | tf.TensorLike, b: tf.Tensor | tf.TensorLike) => tf.Tensor;
type BatchNorm = (x: tf.Tensor | tf.TensorLike, mean: tf.Tensor | tf.TensorLike, variance: tf.Tensor | tf.TensorLike, offset?: tf.Tensor | tf.TensorLike | null, scale?: tf.Tensor | tf.TensorLike | null, varianceEpsilon?: number) => tf.Tensor;
type Conv = (x: tf.Tensor | tf.TensorLike, filter: tf.Tensor | tf.TensorLike, strides: number | [number, number], pad: 'valid' | 'same' | number | tf.backend_util.ExplicitPadding, dataFormat?: 'NHWC' | 'NCHW', dilations?: number | [number, number], dimRoundingMode?: 'floor' | 'round' | 'ceil') => tf.Tensor;
type Norm = (x: tf.Tensor | tf.TensorLike, ord?: number | 'euclidean' | 'fro', axis?: number | number[] | null, keepDims?: boolean) => tf.Tensor;

export function installOpReplacements(o: Overrides): void {
  const core = tfjsCoreExports();
  if (!core) return;
  for (const name of ['softmax', 'logSoftmax'] as const) {
    const original = core[name] as Softmax;
    o.replace(core, name, ((logits: tf.Tensor | tf.TensorLike, dim = -1) =>
      tf.tidy(() => {
        const x = asTensor(logits);
        const axis = dim < 0 ? dim + x.rank : dim;
        // The last axis, or one out of range (tfjs's error), as tfjs does it.
        if (axis === x.rank - 1 || axis < 0 || axis >= x.rank) return original(x, axis < 0 || axis >= x.rank ? dim : axis);
        const perm = x.shape.map((_, i) => (i === axis ? x.rank - 1 : i === x.rank - 1 ? axis : i));
        return tf.transpose(original(tf.transpose(x, perm), -1), perm);
      })) as Softmax);
  }
  o.replace(core, 'divNoNan', ((a: tf.Tensor | tf.TensorLike, b: tf.Tensor | tf.TensorLike) =>
    tf.tidy(() => {
      const [x, y] = [asTensor(a), asTensor(b)];
      const zero = tf.equal(y, 0);
      const quotient = tf.div(x, tf.where(zero, tf.onesLike(y), y));
      return tf.where(zero, tf.zerosLike(quotient), quotient);
    })) as Binary);
  for (const name of ['batchNorm', 'batchNorm2d', 'batchNorm3d', 'batchNorm4d'] as const) {
    const original = core[name] as BatchNorm;
    o.replace(core, name, ((x, mean, variance, offset, scale, varianceEpsilon) => {
      if (offset != null && scale != null) return original(x, mean, variance, offset, scale, varianceEpsilon);
      return tf.tidy(() => {
        const m = asTensor(mean);
        return original(x, m, variance, offset ?? tf.zerosLike(m), scale ?? tf.onesLike(m), varianceEpsilon);
      });
    }) as BatchNorm);
  }
  for (const name of ['depthwiseConv2d', 'conv2d'] as const) {
    const original = core[name] as Conv;
    o.replace(core, name, ((x, filter, strides, pad, dataFormat = 'NHWC', dilations = 1, dimRoundingMode) => {
      const channelsFirst = dataFormat === 'NCHW' && (name === 'depthwiseConv2d' || tf.getBackend() === 'wasm');
      if (!channelsFirst) return original(x, filter, strides, pad, dataFormat, dilations, dimRoundingMode);
      return tf.tidy(() => {
        const t = asTensor(x);
        const rank3 = t.rank === 3;
        const nchw = rank3 ? tf.expandDims(t, 0) : t;
        const y = original(tf.transpose(nchw, [0, 2, 3, 1]), filter, strides, pad, 'NHWC', dilations, dimRoundingMode);
        const back = tf.transpose(y, [0, 3, 1, 2]);
        return rank3 ? tf.squeeze(back, [0]) : back;
      });
    }) as Conv);
  }
  const norm = core.norm as Norm;
  o.replace(core, 'norm', ((x: tf.Tensor | tf.TensorLike, ord: number | 'euclidean' | 'fro' = 'euclidean', axis: number | number[] | null = null, keepDims = false) => {
    const matrix = Array.isArray(axis) && axis.length === 2 && (ord === 1 || ord === Infinity || ord === -Infinity);
    if (!matrix) return norm(x, ord, axis, keepDims);
    return tf.tidy(() => {
      const t = asTensor(x);
      const [rows, cols] = tf.util.parseAxisParam(axis, t.shape);
      // ord 1: the largest column sum (sum over the row axis, then max over the column axis); +-Infinity: the largest (smallest) row sum.
      const [summed, reduced] = ord === 1 ? [rows, cols] : [cols, rows];
      const sums = tf.sum(tf.abs(t), summed, true);
      const result = ord === -Infinity ? tf.min(sums, reduced, true) : tf.max(sums, reduced, true);
      return keepDims ? result : tf.squeeze(result, [rows, cols]);
    });
  }) as Norm);
  // tfjs's chained methods are `op(this, ...args)` on its internal op: point them at the exports above.
  const methods = tf.Tensor.prototype as unknown as Record<string, (...args: unknown[]) => tf.Tensor>;
  for (const name of CHAINED) {
    o.replace(methods, name, function (this: tf.Tensor, ...args: unknown[]) {
      this.throwIfDisposed();
      return (core[name] as (...a: unknown[]) => tf.Tensor)(this, ...args);
    });
  }
}

/** The replaced ops that tfjs also offers as tensor methods. */
const CHAINED = ['softmax', 'logSoftmax', 'divNoNan', 'batchNorm', 'depthwiseConv2d', 'conv2d', 'norm'] as const;

/** An op's argument as a tensor (inside the caller's tidy: a converted one is freed with it). */
const asTensor = (x: tf.Tensor | tf.TensorLike): tf.Tensor => (x instanceof tf.Tensor ? x : tf.tensor(x as number[]));
