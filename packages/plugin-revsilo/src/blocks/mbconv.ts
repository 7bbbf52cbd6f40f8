import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, readParam, TapfitError, type SegmentContext } from '@tapfit/core';
import { activate, ACTIVATIONS, hardsigmoid, type ActivationName } from '../ops/activations';
import { depthwise3d, pointwise, upsampleBilinear, DEPTHWISE_3D_DEFAULT, type Depthwise3dMethod } from '../ops/conv';
import { Norm, type NormKind } from '../ops/norm';
import type { ParamFactory } from '../ops/params';
import { dropPath } from '../ops/random';
import type { Transform } from '../reversible/transform';

export interface MBConvOptions {
  /** 2 for images [N, H, W, C], 3 for volumes [N, D, H, W, C]. */
  readonly dims: 2 | 3;
  readonly inChannels: number;
  readonly outChannels: number;
  /** Depthwise kernel size (odd). */
  readonly kernel: number;
  /** Depthwise stride (downsampling). Default 1. */
  readonly stride?: number | undefined;
  /** Expansion ratio of the 1x1 expansion; 1 leaves the expansion out. Default 1. */
  readonly expandRatio?: number | undefined;
  /** Squeeze-excite ratio (of the input channels); 0 leaves it out. Default 0. */
  readonly seRatio?: number | undefined;
  /** Default 'batch'. */
  readonly norm?: NormKind | undefined;
  /** Groups for norm 'group'. */
  readonly groups?: number | undefined;
  /** Default 'hardswish'. */
  readonly activation?: ActivationName | undefined;
  /** Bilinear upsampling of the output by this factor (2-D; g_{j->i} of a RevSilo). Default 1. */
  readonly upsample?: number | undefined;
  /** Start the last norm's gamma at zero, so the transform starts as zero. Default false. */
  readonly zeroInitLastGamma?: boolean | undefined;
  /** Stochastic-depth rate (per-sample drop of the output, replayed). Default 0. */
  readonly dropPath?: number | undefined;
  /** Norm epsilon (default 1e-3) and batch-norm momentum (TF.js convention, default 0.9). */
  readonly epsilon?: number | undefined;
  readonly momentum?: number | undefined;
  /** How a 3-D depthwise convolution is computed. */
  readonly depthwise3d?: Depthwise3dMethod | undefined;
}

const std = (fanOut: number): { stddev: number } => ({ stddev: Math.sqrt(2 / fanOut) });

/**
 * MBConv without identity skip (docs/techniques.md §2.3 and §3.2): 1x1 expansion + norm +
 * activation (left out at ratio 1) -> depthwise k x k (x k) with the stride + norm +
 * activation -> squeeze-excite (left out at ratio 0) -> 1x1 projection + norm -> optional
 * stochastic depth -> optional bilinear upsampling. Convolutions carry no bias (a norm
 * follows each); Kaiming-normal (fan-out) initialisation.
 */
export class MBConv implements Transform {
  readonly params: tf.Variable[];
  readonly options: Required<Omit<MBConvOptions, 'groups'>> & { groups?: number };
  private readonly expand?: { w: tf.Variable; norm: Norm };
  private readonly depthwise: { w: tf.Variable; norm: Norm };
  private readonly se?: { w1: tf.Variable; b1: tf.Variable; w2: tf.Variable; b2: tf.Variable };
  private readonly project: { w: tf.Variable; norm: Norm };

  constructor(
    readonly name: string,
    options: MBConvOptions,
    params: ParamFactory,
  ) {
    const o = (this.options = {
      ...(options as Required<MBConvOptions>),
      stride: 1,
      expandRatio: 1,
      seRatio: 0,
      norm: 'batch' as NormKind,
      activation: 'hardswish' as ActivationName,
      upsample: 1,
      zeroInitLastGamma: false,
      dropPath: 0,
      epsilon: 1e-3,
      momentum: 0.9,
      depthwise3d: DEPTHWISE_3D_DEFAULT,
      ...defined(options),
    });
    checkMBConv(name, o);
    const hidden = Math.round(o.inChannels * o.expandRatio);
    const norm = (scope: string, channels: number, zeroGamma = false) =>
      new Norm(`${name}/${scope}`, { kind: o.norm, channels, groups: o.groups, epsilon: o.epsilon, momentum: o.momentum, zeroGamma }, params.scope(scope));
    if (o.expandRatio !== 1) {
      this.expand = { w: params.create({ name: 'expand/kernel', shape: [o.inChannels, hidden], init: std(hidden) }), norm: norm('expand/norm', hidden) };
    }
    const k = o.kernel;
    const dwShape = o.dims === 2 ? [k, k, hidden, 1] : [k, k, k, hidden];
    this.depthwise = { w: params.create({ name: 'depthwise/kernel', shape: dwShape, init: std(k ** o.dims) }), norm: norm('depthwise/norm', hidden) };
    if (o.seRatio > 0) {
      const squeezed = Math.max(1, Math.floor(o.inChannels * o.seRatio));
      this.se = {
        w1: params.create({ name: 'se/reduce/kernel', shape: [hidden, squeezed], init: std(squeezed) }),
        b1: params.create({ name: 'se/reduce/bias', shape: [squeezed], init: 'zeros' }),
        w2: params.create({ name: 'se/expand/kernel', shape: [squeezed, hidden], init: std(hidden) }),
        b2: params.create({ name: 'se/expand/bias', shape: [hidden], init: 'zeros' }),
      };
    }
    this.project = { w: params.create({ name: 'project/kernel', shape: [hidden, o.outChannels], init: std(o.outChannels) }), norm: norm('project/norm', o.outChannels, o.zeroInitLastGamma) };
    this.params = [
      ...(this.expand ? [this.expand.w, ...this.expand.norm.params] : []),
      this.depthwise.w,
      ...this.depthwise.norm.params,
      ...(this.se ? [this.se.w1, this.se.b1, this.se.w2, this.se.b2] : []),
      this.project.w,
      ...this.project.norm.params,
    ];
  }

  apply(x: tf.Tensor, ctx: SegmentContext): tf.Tensor {
    return tf.tidy(() => {
      const o = this.options;
      const p = (v: tf.Variable) => readParam(ctx, v);
      let h = x;
      if (this.expand) h = activate(o.activation, this.expand.norm.apply(pointwise(h, p(this.expand.w)), ctx));
      h = activate(o.activation, this.depthwise.norm.apply(this.depthwiseConv(h, p(this.depthwise.w)), ctx));
      if (this.se) {
        const pooled = tf.mean(h, h.shape.slice(1, -1).map((_, i) => i + 1)); // [N, C]
        const s = activate(o.activation, tf.add(tf.matMul(pooled, p(this.se.w1)), p(this.se.b1)));
        const gate = hardsigmoid(tf.add(tf.matMul(s, p(this.se.w2)), p(this.se.b2)));
        h = tf.mul(h, tf.reshape(gate, [h.shape[0], ...h.shape.slice(1, -1).map(() => 1), h.shape[h.rank - 1]]));
      }
      h = this.project.norm.apply(pointwise(h, p(this.project.w)), ctx);
      h = dropPath(h, o.dropPath, this.name, ctx);
      return o.upsample > 1 ? upsampleBilinear(h, o.upsample) : h;
    });
  }

  dispose(): void {
    for (const n of [this.expand?.norm, this.depthwise.norm, this.project.norm]) n?.dispose();
  }

  private depthwiseConv(h: tf.Tensor, w: tf.Tensor): tf.Tensor {
    const { dims, stride } = this.options;
    if (h.rank !== dims + 2) {
      throw new TapfitError(ErrorCodes.SHAPE, `${this.name}: a ${dims}-D MBConv takes [N, ${dims === 2 ? 'H, W' : 'D, H, W'}, C] inputs, got [${h.shape}].`);
    }
    return dims === 2 ? tf.depthwiseConv2d(h as tf.Tensor4D, w as tf.Tensor4D, stride, 'same') : depthwise3d(h, w, stride, this.options.depthwise3d);
  }
}

/** The options that are set (undefined, or null from a JSON layer config, keeps the default). */
function defined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined && v !== null)) as Partial<T>;
}

function checkMBConv(name: string, o: MBConvOptions & { stride: number; expandRatio: number; seRatio: number; upsample: number; dropPath: number; activation: ActivationName }): void {
  const bad = (what: string, fix: string): never => {
    throw new TapfitError(ErrorCodes.CONFIG, `${name}: ${what}; ${fix}.`);
  };
  const positiveInt = (v: number) => Number.isInteger(v) && v > 0;
  if (o.dims !== 2 && o.dims !== 3) bad(`dims must be 2 or 3 (got ${o.dims})`, 'use 2 for images, 3 for volumes');
  if (!positiveInt(o.inChannels) || !positiveInt(o.outChannels)) bad(`channel counts must be positive integers (got ${o.inChannels} -> ${o.outChannels})`, 'fix the channel counts');
  if (!positiveInt(o.kernel) || o.kernel % 2 === 0) bad(`the depthwise kernel must be an odd positive integer (got ${o.kernel})`, 'use 3, 5, 7, ...');
  if (!positiveInt(o.stride)) bad(`stride must be a positive integer (got ${o.stride})`, 'use 1 or a power of 2');
  if (!(o.expandRatio > 0)) bad(`expandRatio must be > 0 (got ${o.expandRatio})`, 'use 1 for no expansion');
  if (!(o.seRatio >= 0 && o.seRatio <= 1)) bad(`seRatio must be in [0, 1] (got ${o.seRatio})`, 'use 0 for no squeeze-excite');
  if (!positiveInt(o.upsample) || (o.upsample > 1 && o.dims !== 2)) bad(`upsample must be a positive integer, and > 1 only in 2-D (got ${o.upsample})`, 'upsample 2-D transforms only');
  if (!(o.dropPath >= 0 && o.dropPath < 1)) bad(`dropPath must be in [0, 1) (got ${o.dropPath})`, 'use 0 to turn stochastic depth off');
  if (!ACTIVATIONS.includes(o.activation)) bad(`unknown activation '${String(o.activation)}'`, `use one of ${ACTIVATIONS.join(', ')}`);
}
