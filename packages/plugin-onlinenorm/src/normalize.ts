import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { backwardStatistics, forwardStatistics, resolveRecurrenceMode, type RecurrenceMode } from './recurrences';
import { checkedTogetherWith, readFiniteChecks, type OnlineNormState } from './state';

/**
 * - 'train': normalise with the statistics of all previous samples, update M, V; the
 *   gradient is the control process of docs/techniques.md §6.3 (updates u, v).
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
  /**
   * Check new statistics for NaN/Inf every this many calls (0: never; default 0 here).
   * Host recurrences check on the host and throw at once, before assigning. Device
   * recurrences check on the device and keep the result unread (`OnlineNormState.commit`):
   * the state's next training or inference call reads it, with those of the other states
   * committed in the same pass, its model's (`checkedTogetherWith`, one read-back), and a
   * failure puts the statistics back and throws there, one call late. The plugin reads its layers' once per step, within the step.
   */
  checkFiniteEvery?: number | undefined;
  /** Where the per-batch recurrences run (recurrences.ts); default 'auto'. */
  recurrences?: RecurrenceMode | undefined;
  /** 'recompute' only: the M, V to normalise with (default: the current ones). */
  statistics?: { mean: tf.Tensor; variance: tf.Tensor } | undefined;
}

/**
 * Online Normalization's core (docs/techniques.md §6.2 forward, §6.3 backward) for
 * channels-last input `[N, ..., C]` (dense `[N, C]`, conv `[N, H, W, C]`,
 * `[N, D, H, W, C]`). Samples are taken strictly in order, within and across batches;
 * each batch's recurrences are evaluated in one go (recurrences.ts: a float64 host loop
 * over `[N, C]` summaries, or vectorised device scans), never as per-sample kernels.
 */
export function onlineNormalize(x: tf.Tensor, state: OnlineNormState, args: NormalizeArgs): tf.Tensor {
  const geometry = checkInput(x, state);
  // Unread device-side checks are read before the statistics are used again, with those of
  // the states committed in the same pass (its model's other layers), never another
  // model's (a recompute replays the statistics saved before its training call, within
  // the same step).
  if (args.mode !== 'recompute' && state.unreadChecks > 0) readFiniteChecks(checkedTogetherWith(state));
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
 * §6.2 for a whole batch: sample i is normalised with the statistics of every sample
 * before it, `y_i = (x_i - M_{i-1}) / sqrt(V_{i-1} + eps)`; M, V then include the batch.
 */
function forward(x: tf.Tensor, geometry: Geometry, state: OnlineNormState, args: NormalizeArgs): { y: tf.Tensor; scale: tf.Tensor2D } {
  const { x3, perSample, restore } = layout(x, geometry);
  let mu: tf.Tensor2D;
  let spread: tf.Tensor2D | null = null;
  if (x.rank === 2) {
    mu = x as tf.Tensor2D;
  } else {
    const moments = tf.moments(x3, 1);
    mu = moments.mean as tf.Tensor2D;
    spread = moments.variance as tf.Tensor2D;
  }
  const start = args.mode === 'recompute' && args.statistics ? args.statistics : state;
  const stats = forwardStatistics(resolveRecurrenceMode(args.recurrences), mu, spread, start, args.alphaFwd, args.epsilon);
  const y = restore(tf.div(tf.sub(x3, perSample(stats.meanBefore)), perSample(stats.scale)));
  if (args.mode === 'train') {
    state.commit({ mean: stats.mean, variance: stats.variance }, shouldCheck(args, state.trainingCalls + 1), stats.finite);
    state.trainingCalls++;
  }
  return { y, scale: stats.scale };
}

/**
 * §6.3 for a whole batch, in the forward's sample order, with `g_i = dL/dy_i`:
 *   gt_i = g_i - (1-b) v_{i-1} y_i          remove the component along y
 *   v_i  = v_{i-1} + <gt_i, y_i>
 *   h_i  = gt_i / scale_i
 *   dx_i = h_i - (1-b) u_{i-1}              remove the component along 1
 *   u_i  = u_{i-1} + mean(dx_i)
 * The accumulators only need per-sample spatial means of g, y, g*y, y*y.
 */
function backward(dy: tf.Tensor, y: tf.Tensor, scale: tf.Tensor2D, geometry: Geometry, state: OnlineNormState, args: NormalizeArgs): tf.Tensor {
  const { x3: g3, perSample, restore } = layout(dy, geometry);
  const y3 = layout(y, geometry).x3;
  const spatialMean = (t: tf.Tensor): tf.Tensor2D => (t.rank === 2 ? (t as tf.Tensor2D) : tf.mean(t, 1));
  const stats = backwardStatistics(
    resolveRecurrenceMode(args.recurrences),
    { yy: spatialMean(tf.square(y3)), gy: spatialMean(tf.mul(g3, y3)), g: spatialMean(g3), y: spatialMean(y3), scale },
    state,
    args.alphaBkw,
  );
  const gt = tf.sub(g3, tf.mul(y3, perSample(stats.leakV)));
  const dx = restore(tf.sub(tf.div(gt, perSample(scale)), perSample(stats.leakU)));
  state.commit({ u: stats.u, v: stats.v }, shouldCheck(args, state.backwardCalls + 1), stats.finite);
  state.backwardCalls++;
  return dx;
}

/**
 * Dense input `[N, C]` is used as is; any other `[N, ..., C]` is viewed as `[N, S, C]`,
 * with per-sample `[N, C]` statistics broadcast over the S positions.
 */
function layout(t: tf.Tensor, { n, s, c }: Geometry) {
  if (t.rank === 2) return { x3: t, perSample: (stat: tf.Tensor2D): tf.Tensor => stat, restore: (r: tf.Tensor) => r };
  const shape = t.shape;
  return { x3: t.reshape([n, s, c]), perSample: (stat: tf.Tensor2D): tf.Tensor => stat.expandDims(1), restore: (r: tf.Tensor) => r.reshape(shape) };
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
