import type { Depthwise3dMethod } from '../ops/conv';
import type { ActivationName } from '../ops/activations';
import type { NormKind } from '../ops/norm';

/** One resolution stream of a RevBiFPN-style network (docs/techniques.md §2.3-§2.4). */
export interface StreamConfig {
  readonly channels: number;
  /** Depthwise kernel of the stream's blocks (k_i). */
  readonly kernel: number;
  /** Kernel pad p_i, added to every kernel that reads or writes this stream. Default 0. */
  readonly pad?: number;
  readonly expandRatio: number;
  readonly seRatio: number;
}

/** Settings shared by every MBConv of a block (JSON, so tfjs-layers can serialise it). */
export interface ConvSettings {
  /** 2 for images, 3 for volumes. Default 2. */
  readonly dims?: 2 | 3 | undefined;
  readonly norm?: NormKind | undefined;
  readonly groups?: number | undefined;
  readonly activation?: ActivationName | undefined;
  readonly epsilon?: number | undefined;
  readonly momentum?: number | undefined;
  /** Stochastic-depth rate inside the transforms (replayed under reconstruction). */
  readonly dropPath?: number | undefined;
  /** Start each transform's last norm gamma at zero (never for a transform that creates a stream). */
  readonly zeroInitLastGamma?: boolean | undefined;
  readonly depthwise3d?: Depthwise3dMethod | undefined;
  /**
   * Fraction bits of the reversible segments' exact fixed-point arithmetic
   * (reversible/fixed-point.ts): rebuilt inputs equal the forward's bit for bit. 0: float32.
   */
  readonly fixedPoint?: number | undefined;
}

/** The MBConv options that come from the shared settings. */
export function convOptions(s: ConvSettings) {
  return {
    dims: s.dims ?? 2,
    norm: s.norm,
    groups: s.groups,
    activation: s.activation,
    epsilon: s.epsilon,
    momentum: s.momentum,
    dropPath: s.dropPath,
    depthwise3d: s.depthwise3d,
  } as const;
}
