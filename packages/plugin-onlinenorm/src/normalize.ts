import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { affineScan, geometricScan } from './scan';
import type { OnlineNormState } from './state';

/**
 * - 'train': normalise with the statistics of all previous samples, update M, V; the
 *   gradient is the control process of §6.3 (updates u, v).
 * - 'recompute': the same output and gradient as 'train' but M, V are not touched (the
 *   memory executor re-running a forward); pass the statistics the original call used.
 * - 'inference': frozen statistics, no state change, plain gradient `dy / sqrt(V + eps)`.
 */
export type NormMode = 'train' | 'recompute' | 'inference';

export interface NormalizeArgs {
  mode: NormMode;
  alphaFwd: number;
  alphaBkw: number;
  epsilon: number;
  /** Check new statistics for NaN/Inf every this many calls (0: never). */
  checkFiniteEvery?: number;
  /** 'recompute' only: the M, V to normalise with (default: the current ones). */
  statistics?: { mean: tf.Tensor; variance: tf.Tensor };
}

/**
 * Online Normalization's core (techniques.md §6.2 forward, §6.3 backward) for
 * channels-last input `[N, ..., C]` (dense `[N, C]`, conv `[N, H, W, C]`,
 * `[N, D, H, W, C]`). Samples are taken strictly in order, within and across batches;
 * the within-batch recurrences are vectorised (scan.ts), not looped per sample.
 */
export function onlineNormalize(x: tf.Tensor, state: OnlineNormState, args: NormalizeArgs): tf.Tensor {
  const geometry = checkInput(x, state);
  if (args.mode === 'inference') {
    return tf.tidy(() => tf.div(tf.sub(x, state.mean), tf.sqrt(tf.add(state.variance, args.epsilon))));
  }
  const normalize = tf.customGrad((...inputs: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, save] = inputs as [tf.Tensor, tf.GradSaveFunc];
    const { y, scale } = forward(input, geometry, state, args);
    save([y, scale]);
    return {
      value: y,
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) =>
        tf.tidy(() => backward(dy as tf.Tensor, saved[0], saved[1] as tf.Tensor2D, geometry, state, args)),
    };
  });
  return normalize(x);
}

/** `[N, S, C]`: batch, spatial positions per sample, channels. */
interface Geometry {
  n: number;
  s: number;
  c: number;
}

/**
 * §6.2 for a whole batch. With `mu_i`, `s2_i` the spatial mean/variance of sample i:
 *   M after i samples: M_{i} = a M_{i-1} + (1-a) mu_i
 *   V after i samples: V_{i} = a V_{i-1} + (1-a) s2_i + a(1-a) (mu_i - M_{i-1})^2
 *   y_i = (x_i - M_{i-1}) / sqrt(V_{i-1} + eps)        (statistics BEFORE sample i)
 */
function forward(x: tf.Tensor, { n, s, c }: Geometry, state: OnlineNormState, args: NormalizeArgs): { y: tf.Tensor; scale: tf.Tensor2D } {
  const a = args.alphaFwd;
  const x3 = x.reshape([n, s, c]);
  let mu: tf.Tensor2D;
  let spreadTerm: tf.Tensor2D | undefined;
  if (s === 1) {
    mu = x.reshape([n, c]);
  } else {
    const { mean, variance } = tf.moments(x3, 1);
    mu = mean as tf.Tensor2D;
    spreadTerm = tf.mul<tf.Tensor2D>(variance, 1 - a);
  }
  const start = args.mode === 'recompute' && args.statistics ? args.statistics : state;
  const means = geometricScan(a, start.mean as tf.Tensor1D, tf.mul(mu, 1 - a));
  const meanBefore = means.slice([0, 0], [n, c]);
  let varianceInputs = tf.mul<tf.Tensor2D>(tf.square(tf.sub(mu, meanBefore)), a * (1 - a));
  if (spreadTerm) varianceInputs = tf.add<tf.Tensor2D>(varianceInputs, spreadTerm);
  const variances = geometricScan(a, start.variance as tf.Tensor1D, varianceInputs);
  const scale = tf.sqrt(tf.add(variances.slice([0, 0], [n, c]), args.epsilon)) as tf.Tensor2D;
  const y = tf.div(tf.sub(x3, meanBefore.expandDims(1)), scale.expandDims(1)).reshape(x.shape);

  if (args.mode === 'train') {
    const check = shouldCheck(args, state.trainingCalls + 1);
    state.commit({ mean: means.slice([n, 0], [1, c]).reshape([c]), variance: variances.slice([n, 0], [1, c]).reshape([c]) }, check);
    state.trainingCalls++;
  }
  return { y, scale };
}

/**
 * §6.3 for a whole batch, in the forward's sample order, with `g_i = dL/dy_i`:
 *   gt_i = g_i - (1-b) v_{i-1} y_i          remove the component along y
 *   v_i  = v_{i-1} + <gt_i, y_i>            = v_{i-1} (1 - (1-b)<y_i,y_i>) + <g_i,y_i>
 *   h_i  = gt_i / scale_i
 *   dx_i = h_i - (1-b) u_{i-1}              remove the component along 1
 *   u_i  = u_{i-1} + mean(dx_i)             = b u_{i-1} + mean(h_i)
 * The closed forms on the right are what the scans evaluate.
 */
function backward(dy: tf.Tensor, y: tf.Tensor, scale: tf.Tensor2D, { n, s, c }: Geometry, state: OnlineNormState, args: NormalizeArgs): tf.Tensor {
  const leak = 1 - args.alphaBkw;
  const g3 = dy.reshape([n, s, c]) as tf.Tensor3D;
  const y3 = y.reshape([n, s, c]) as tf.Tensor3D;
  const spatialMean = (t: tf.Tensor3D): tf.Tensor2D => (s === 1 ? t.reshape([n, c]) : tf.mean(t, 1));
  const yy = spatialMean(tf.square<tf.Tensor3D>(y3));
  const gy = spatialMean(tf.mul<tf.Tensor3D>(g3, y3));
  const vs = affineScan(tf.sub(1, tf.mul(yy, leak)), state.v as tf.Tensor1D, gy);
  const vBefore = vs.slice([0, 0], [n, c]);
  const gt = tf.sub(g3, tf.mul(y3, tf.mul(vBefore, leak).expandDims(1)));
  const h = tf.div<tf.Tensor3D>(gt, scale.expandDims(1));
  const us = geometricScan(args.alphaBkw, state.u as tf.Tensor1D, spatialMean(h));
  const uBefore = us.slice([0, 0], [n, c]);
  const dx = tf.sub(h, tf.mul(uBefore, leak).expandDims(1));

  const check = shouldCheck(args, state.backwardCalls + 1);
  state.commit({ u: us.slice([n, 0], [1, c]).reshape([c]), v: vs.slice([n, 0], [1, c]).reshape([c]) }, check);
  state.backwardCalls++;
  return dx.reshape(dy.shape);
}

function shouldCheck(args: NormalizeArgs, call: number): boolean {
  const every = args.checkFiniteEvery ?? 0;
  return every > 0 && call % every === 0;
}

function checkInput(x: tf.Tensor, state: OnlineNormState): Geometry {
  if (x.rank < 2) {
    throw new TapfitError(ErrorCodes.SHAPE, `OnlineNorm '${state.label}': input must be channels-last [N, ..., C] with rank >= 2 (got shape [${x.shape}])`);
  }
  if (x.dtype !== 'float32') {
    throw new TapfitError(ErrorCodes.SHAPE, `OnlineNorm '${state.label}': input must be float32 (got ${x.dtype}); cast it first`);
  }
  const c = x.shape[x.rank - 1];
  if (c !== state.channels) {
    throw new TapfitError(ErrorCodes.SHAPE, `OnlineNorm '${state.label}': input has ${c} channels (last axis of [${x.shape}]) but the layer was built for ${state.channels}`);
  }
  const n = x.shape[0];
  if (n < 1) throw new TapfitError(ErrorCodes.SHAPE, `OnlineNorm '${state.label}': empty batch (shape [${x.shape}])`);
  return { n, s: x.size / (n * c), c };
}
