import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, readParam, TapfitError, type SegmentContext } from '@tapfit/core';
import type { ParamFactory } from './params';

export type NormKind = 'batch' | 'instance' | 'group' | 'none';

export const NORM_KINDS: readonly NormKind[] = ['batch', 'instance', 'group', 'none'];

export interface NormOptions {
  readonly kind: NormKind;
  readonly channels: number;
  /** Groups of channels for 'group' (must divide the channel count). */
  readonly groups?: number;
  /** Added to the variance. Default 1e-3 (docs/techniques.md §2.3). */
  readonly epsilon?: number;
  /** Moving-average momentum of 'batch' statistics, TF.js convention. Default 0.9 (PyTorch's 0.1). */
  readonly momentum?: number;
  /** Start gamma at zero, so the branch starts as zero (docs/techniques.md §2.3). */
  readonly zeroGamma?: boolean;
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
    const stats = this.statistics(x, ctx);
    const normalised = this.normalise(x, stats.mean, stats.variance);
    return tf.add(tf.mul(normalised, readParam(ctx, this.gamma!)), readParam(ctx, this.beta!));
  }

  /** Frees the statistics kept for a replay. */
  dispose(): void {
    if (this.kept) tf.dispose([this.kept.mean, this.kept.variance]);
    this.kept = undefined;
  }

  private groups(): number {
    return this.options.kind === 'instance' ? this.options.channels : this.options.kind === 'group' ? (this.options.groups ?? 8) : 1;
  }

  private statistics(x: tf.Tensor, ctx: SegmentContext): { mean: tf.Tensor; variance: tf.Tensor } {
    if (this.options.kind === 'batch' && !ctx.training) return { mean: readParam(ctx, this.movingMean!), variance: readParam(ctx, this.movingVariance!) };
    const computed = this.batchStatistics(x);
    if (!ctx.training) return computed;
    if (ctx.recomputing) {
      const kept = this.kept;
      if (!kept || !sameShape(kept.mean, computed.mean)) return computed; // nothing to replay: a rebuild outside a step
      return { mean: replayed(computed.mean, kept.mean), variance: replayed(computed.variance, kept.variance) };
    }
    this.dispose();
    this.kept = { mean: tf.keep(tf.clone(computed.mean)), variance: tf.keep(tf.clone(computed.variance)) };
    if (this.options.kind === 'batch') this.updateMovingAverages(computed, x);
    return computed;
  }

  /** Per-channel ('batch') or per-sample-and-group statistics, shaped to broadcast against the grouped input. */
  private batchStatistics(x: tf.Tensor): { mean: tf.Tensor; variance: tf.Tensor } {
    if (this.options.kind === 'batch') {
      const axes = x.shape.slice(0, -1).map((_, i) => i);
      return tf.moments(x, axes);
    }
    const grouped = this.grouped(x);
    return tf.moments(grouped, [1, 3], true);
  }

  private normalise(x: tf.Tensor, mean: tf.Tensor, variance: tf.Tensor): tf.Tensor {
    const scale = tf.rsqrt(tf.add(variance, this.epsilon));
    if (this.options.kind === 'batch') return tf.mul(tf.sub(x, mean), scale);
    return tf.reshape(tf.mul(tf.sub(this.grouped(x), mean), scale), x.shape);
  }

  /** [N, ..., C] as [N, S, G, C/G] (S: spatial positions). */
  private grouped(x: tf.Tensor): tf.Tensor {
    const g = this.groups();
    return tf.reshape(x, [x.shape[0], -1, g, x.shape[x.rank - 1] / g]);
  }

  private updateMovingAverages(stats: { mean: tf.Tensor; variance: tf.Tensor }, x: tf.Tensor): void {
    const n = x.size / x.shape[x.rank - 1];
    const unbiased = n > 1 ? tf.mul(stats.variance, n / (n - 1)) : stats.variance; // as PyTorch's running_var
    const m = this.momentum;
    this.movingMean!.assign(tf.add(tf.mul(this.movingMean!, m), tf.mul(stats.mean, 1 - m)));
    this.movingVariance!.assign(tf.add(tf.mul(this.movingVariance!, m), tf.mul(unbiased, 1 - m)));
  }
}

function sameShape(a: tf.Tensor, b: tf.Tensor): boolean {
  return a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);
}
