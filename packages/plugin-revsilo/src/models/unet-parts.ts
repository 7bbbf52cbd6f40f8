import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, readParam, TapfitError, type Segment } from '@tapfit/core';
import type { Module } from '../blocks/module';
import { activate, type ActivationName } from '../ops/activations';
import { conv3d, pointwise, upsampleConv3d } from '../ops/conv';
import { Norm, type NormKind } from '../ops/norm';
import type { ParamFactory } from '../ops/params';

/** Settings shared by the U-Net's ordinary layers. */
export interface UNetLayerSettings {
  readonly norm?: NormKind | undefined;
  readonly groups?: number | undefined;
  readonly activation?: ActivationName | undefined;
  readonly epsilon?: number | undefined;
  readonly momentum?: number | undefined;
}

const kaiming = (fanOut: number) => ({ stddev: Math.sqrt(2 / fanOut) });

function normOf(name: string, s: UNetLayerSettings, channels: number, params: ParamFactory): Norm {
  return new Norm(`${name}/norm`, { kind: s.norm ?? 'instance', channels, groups: s.groups, epsilon: s.epsilon ?? 1e-5, momentum: s.momentum }, params.scope('norm'));
}

function volume(name: string, x: tf.Tensor, channels: number, multiple = 1): void {
  const [, d, h, w, c] = x.shape as number[];
  if (x.rank !== 5 || c !== channels) {
    throw new TapfitError(ErrorCodes.SHAPE, `segment '${name}': expects a volume [N, D, H, W, ${channels}], got [${x.shape}].`);
  }
  if ([d, h, w].some((s) => s % multiple !== 0)) {
    throw new TapfitError(ErrorCodes.SHAPE, `segment '${name}': the volume [${x.shape}] does not halve here (D, H, W must be divisible by ${multiple}); use input sizes divisible by 2^(levels - 1).`);
  }
}

const scaled = (s: tf.Shape, f: number, channels: number): tf.Shape => [s[0], ...s.slice(1, -1).map((d) => (d === null ? null : d * f)), channels];

export interface UNetConvOptions extends UNetLayerSettings {
  readonly name: string;
  readonly inChannels: number;
  readonly outChannels: number;
}

/** 3x3x3 convolution + norm + activation, stride 1 (the stem) or 2 (downsampling, docs/techniques.md §3.2). */
export function unetConvBlock(options: UNetConvOptions & { stride: 1 | 2 }, params: ParamFactory): Module {
  const { name, inChannels, outChannels, stride } = options;
  const w = params.create({ name: 'conv/kernel', shape: [3, 3, 3, inChannels, outChannels], init: kaiming(27 * outChannels) });
  const norm = normOf(name, options, outChannels, params);
  return {
    name,
    params: [w, ...norm.params],
    forward: ([x], ctx) => {
      volume(name, x, inChannels, stride);
      return [tf.tidy(() => activate(options.activation ?? 'relu6', norm.apply(conv3d(x, readParam(ctx, w), stride), ctx)))];
    },
    outputShapes: ([s]) => [scaled(s, 1 / stride, outChannels)],
    dispose: () => norm.dispose(),
  };
}

/**
 * The decoder's merge (docs/techniques.md §3.2): inputs [skip, h]; h upsampled by a 2x2x2
 * transposed convolution with stride 2 (C_{l+1} -> C_l), concatenated with the skip, then a
 * 1x1x1 convolution (2 C_l -> C_l) + norm + activation.
 */
export function unetUpBlock(options: UNetConvOptions, params: ParamFactory): Module {
  const { name, inChannels, outChannels } = options;
  const up = params.create({ name: 'up/kernel', shape: [inChannels, 8 * outChannels], init: kaiming(8 * outChannels) });
  const merge = params.create({ name: 'merge/kernel', shape: [2 * outChannels, outChannels], init: kaiming(outChannels) });
  const norm = normOf(name, options, outChannels, params);
  return {
    name,
    params: [up, merge, ...norm.params],
    forward: ([skip, x], ctx) => {
      volume(name, x, inChannels);
      volume(name, skip, outChannels);
      return [
        tf.tidy(() => {
          const u = upsampleConv3d(x, readParam(ctx, up));
          if (u.shape.some((d, a) => d !== skip.shape[a] && a < 4)) {
            throw new TapfitError(ErrorCodes.SHAPE, `segment '${name}': the upsampled volume [${u.shape}] does not match the skip [${skip.shape}]; use input sizes divisible by 2^(levels - 1).`);
          }
          // The 1x1x1 conv of concat([skip, u]) as the sum of its two halves' products (no
          // 5-D concat, whose gradient is a slow 5-D split on wasm).
          const k = readParam(ctx, merge);
          const merged = tf.add(pointwise(skip, tf.slice(k, [0, 0], [outChannels, outChannels])), pointwise(u, tf.slice(k, [outChannels, 0], [outChannels, outChannels])));
          return activate(options.activation ?? 'relu6', norm.apply(merged, ctx));
        }),
      ];
    },
    outputShapes: ([skip]) => [[...skip]],
    dispose: () => norm.dispose(),
  };
}

/** The segmentation head: a 1x1x1 convolution with bias to the class logits. */
export function unetHeadBlock(options: { name: string; inChannels: number; classes: number }, params: ParamFactory): Module {
  const { name, inChannels, classes } = options;
  const w = params.create({ name: 'kernel', shape: [inChannels, classes], init: { stddev: 1 / Math.sqrt(inChannels) } });
  const b = params.create({ name: 'bias', shape: [classes], init: 'zeros' });
  return {
    name,
    params: [w, b],
    forward: ([x], ctx) => {
      volume(name, x, inChannels);
      return [pointwise(x, readParam(ctx, w), readParam(ctx, b))];
    },
    outputShapes: ([s]) => [[...s.slice(0, -1), classes]],
  };
}

/**
 * A module inside the U-Net's chain of segments: the first `carried` streams (skips kept
 * for the decoder) pass through, the module reads the rest, and its outputs follow
 * (after the streams it read, when `keepInput`: a downsampling keeps its input as a skip).
 */
export function carriedModule(module: Module, carried: number, keepInput = false): Segment {
  return {
    name: module.name,
    params: module.params,
    forward: (xs, ctx) => {
      const rest = xs.slice(carried);
      return [...xs.slice(0, carried), ...(keepInput ? rest : []), ...module.forward(rest, ctx)];
    },
  };
}
