import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, readParam, TapfitError, type SegmentContext } from '@tapfit/core';
import type { ParamFactory } from './params';

export type NormKind = 'batch' | 'instance' | 'group' | 'none';

export const NORM_KINDS: readonly NormKind[] = ['batch', 'instance', 'group', 'none'];

export interface NormOptions {
  readonly kind: NormKind;
  readonly channels: number;
  /** Groups of channels for 'group' (must divide the channel count). */
  readonly groups?: number | undefined;
  /** Added to the variance. Default 1e-3 (docs/techniques.md §2.3). */
  readonly epsilon?: number | undefined;
  /** Moving-average momentum of 'batch' statistics, TF.js convention. Default 0.9 (PyTorch's 0.1). */
  readonly momentum?: number | undefined;
  /** Start gamma at zero, so the branch starts as zero (docs/techniques.md §2.3). */
  readonly zeroGamma?: boolean | undefined;
}

/**
 * A value equal to `cached` whose gradient flows to `computed`: a rebuilt forward
 * normalises with the original forward's statistics (bit-exact values) while its
 * gradient is that of statistics computed from the rebuilt input (what autodiff of the
 * original forward differentiates).
 */
type CustomGradientFunc = Parameters<typeof tf.customGrad>[0];
const replayed = tf.customGrad(((computed: tf.Tensor, cached: tf.Tensor) => ({
  value: tf.clone(cached),
  gradFunc: (dy: tf.Tensor) => tf.tidy(() => [tf.reshape(dy, computed.shape), tf.zerosLike(cached)]),
})) as unknown as CustomGradientFunc) as unknown as (computed: tf.Tensor, cached: tf.Tensor) => tf.Tensor;

/**
 * Batch, instance or group normalisation with a learned per-channel affine, for
 * channels-last tensors of any rank (docs/techniques.md §0.2), made exact under replay
 * (docs/techniques.md §2.5, BatchNorm replay):
 *
 * - a training forward (`ctx.training && !ctx.recomputing`) normalises with the batch's
 *   statistics, keeps them for this step, and moves the 'batch' moving averages;
 * - a replayed forward (`ctx.recomputing`: recompute, or the rebuild of an inverted
 *   segment) normalises with the kept statistics (values as in the original forward) and
 *   moves nothing, so statistics move exactly once per step;
 * - inference uses the moving averages ('batch') or the sample's own statistics.
 */
export class Norm {
  readonly params: tf.Variable[];
  private readonly gamma?: tf.Variable;
  private readonly beta?: tf.Variable;
  private readonly movingMean?: tf.Variable;
  private readonly movingVariance?: tf.Variable;
  private kept?: { mean: tf.Tensor; variance: tf.Tensor };
  private readonly epsilon: number;
  private readonly momentum: number;

  constructor(
    readonly name: string,
    private readonly options: NormOptions,
    params: ParamFactory,
  ) {
    const { kind, channels } = options;
    if (!NORM_KINDS.includes(kind)) throw new TapfitError(ErrorCodes.CONFIG, `${name}: unknown norm '${String(kind)}'; use one of ${NORM_KINDS.join(', ')}.`);
    const groups = this.groups();
    if (kind === 'group' && (!Number.isInteger(groups) || groups < 1 || channels % groups !== 0)) {
      throw new TapfitError(ErrorCodes.CONFIG, `${name}: group norm needs 'groups' dividing the ${channels} channels (got ${groups}); pick a divisor of ${channels}.`);
    }
    this.epsilon = options.epsilon ?? 1e-3;
    this.momentum = options.momentum ?? 0.9;
    if (kind === 'none') {
      this.params = [];
      return;
    }
    this.gamma = params.create({ name: 'gamma', shape: [channels], init: options.zeroGamma ? 'zeros' : 'ones' });
    this.beta = params.create({ name: 'beta', shape: [channels], init: 'zeros' });
    if (kind === 'batch') {
      this.movingMean = params.create({ name: 'moving_mean', shape: [channels], init: 'zeros', trainable: false });
      this.movingVariance = params.create({ name: 'moving_variance', shape: [channels], init: 'ones', trainable: false });
    }
    this.params = [this.gamma, this.beta, ...(this.movingMean ? [this.movingMean, this.movingVariance!] : [])];
  }

  apply(x: tf.Tensor, ctx: SegmentContext): tf.Tensor {
    if (this.options.kind === 'none') return x;
    const c = x.shape[x.rank - 1];
    if (c !== this.options.channels) {
      throw new TapfitError(ErrorCodes.SHAPE, `${this.name}: expected ${this.options.channels} channels (last axis), got [${x.shape}].`);
    }
    // Work on [rows, C] (batch) or [N, G, positions] (groups) so that every reduction, the
    // broadcasts' gradients included, runs over the innermost axis: on wasm a sum over the
    // outer axes of a 5-D tensor took 40 times as long as the same sum of the [rows, C] view.
    const laid = this.layout(x);
    const stats = this.statistics(laid, ctx);
    const normalised = this.restore(tf.mul(tf.sub(laid, stats.mean), tf.rsqrt(tf.add(stats.variance, this.epsilon))), x.shape);
    return tf.reshape(tf.add(tf.mul(normalised, readParam(ctx, this.gamma!)), readParam(ctx, this.beta!)), x.shape);
  }

  /** Frees the statistics kept for a replay. */
  dispose(): void {
    if (this.kept) tf.dispose([this.kept.mean, this.kept.variance]);
    this.kept = undefined;
  }

  private groups(): number {
    return this.options.kind === 'instance' ? this.options.channels : this.options.kind === 'group' ? (this.options.groups ?? 8) : 1;
  }

  private statistics(laid: tf.Tensor, ctx: SegmentContext): { mean: tf.Tensor; variance: tf.Tensor } {
    if (this.options.kind === 'batch' && !ctx.training) return { mean: readParam(ctx, this.movingMean!), variance: readParam(ctx, this.movingVariance!) };
    const computed = this.batchStatistics(laid);
    if (!ctx.training) return computed;
    if (ctx.recomputing) {
      const kept = this.kept;
      if (!kept || !sameShape(kept.mean, computed.mean)) return computed; // nothing to replay: a rebuild outside a step
      return { mean: replayed(computed.mean, kept.mean), variance: replayed(computed.variance, kept.variance) };
    }
    this.dispose();
    this.kept = { mean: tf.keep(tf.clone(computed.mean)), variance: tf.keep(tf.clone(computed.variance)) };
    if (this.options.kind === 'batch') this.updateMovingAverages(computed, laid);
    return computed;
  }

  /** The reduction layout: [rows, C] for 'batch', [N, G, positions * C/G] for groups. */
  private layout(x: tf.Tensor): tf.Tensor {
    const c = x.shape[x.rank - 1];
    if (this.options.kind === 'batch') return tf.reshape(x, [-1, c]);
    const g = this.groups();
    const grouped = tf.reshape(x, [x.shape[0], -1, g, c / g]);
    return tf.reshape(tf.transpose(grouped, [0, 2, 1, 3]), [x.shape[0], g, -1]);
  }

  /** The layout back to [rows, C] (the affine's). */
  private restore(laid: tf.Tensor, shape: number[]): tf.Tensor {
    const c = shape[shape.length - 1];
    if (this.options.kind === 'batch') return laid;
    const g = this.groups();
    return tf.reshape(tf.transpose(tf.reshape(laid, [shape[0], g, -1, c / g]), [0, 2, 1, 3]), [-1, c]);
  }

  /** Per-channel ('batch', [C]) or per-sample-and-group ([N, G, 1]) mean and variance of the laid-out input. */
  private batchStatistics(laid: tf.Tensor): { mean: tf.Tensor; variance: tf.Tensor } {
    return this.options.kind === 'batch' ? tf.moments(laid, 0) : tf.moments(laid, 2, true);
  }

  private updateMovingAverages(stats: { mean: tf.Tensor; variance: tf.Tensor }, laid: tf.Tensor): void {
    const n = laid.shape[0];
    const unbiased = n > 1 ? tf.mul(stats.variance, n / (n - 1)) : stats.variance; // as PyTorch's running_var
    const m = this.momentum;
    this.movingMean!.assign(tf.add(tf.mul(this.movingMean!, m), tf.mul(stats.mean, 1 - m)));
    this.movingVariance!.assign(tf.add(tf.mul(this.movingVariance!, m), tf.mul(unbiased, 1 - m)));
  }
}

function sameShape(a: tf.Tensor, b: tf.Tensor): boolean {
  return a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);
}
