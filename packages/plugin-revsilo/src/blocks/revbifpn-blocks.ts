import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError, type Segment } from '@tapfit/core';
import { depthToSpace, spaceToDepth } from '../ops/conv';
import type { ParamFactory } from '../ops/params';
import type { ReversibleSegment } from '../reversible/reversible-segment';
import { coupling, streamCouplings } from './coupling';
import { MBConv } from './mbconv';
import type { Module } from './module';
import { revSilo } from './silo';
import { convOptions, type ConvSettings, type StreamConfig } from './stream-config';
import { checkStreams } from './streams';

const kernelOf = (s: StreamConfig): number => s.kernel + (s.pad ?? 0);

export interface StreamBlocksOptions extends ConvSettings {
  readonly name: string;
  readonly streams: readonly StreamConfig[];
}

/**
 * A reversible MBConv block on every stream (docs/techniques.md §2.2, §2.4): stream i's
 * coupling has F_i, G_i = MBConv C_i/2 -> C_i/2, stride 1, kernel k_i + p_i, the stream's
 * expansion and squeeze-excite ratios. With one stream (and `dims: 3`) it is the
 * reversible MBConv block of §3.2.
 */
export function streamBlocks(options: StreamBlocksOptions, params: ParamFactory): ReversibleSegment & Module {
  const { name, streams } = options;
  const half = (s: StreamConfig, i: number, which: 'F' | 'G') => {
    if (s.channels % 2 !== 0) {
      throw new TapfitError(ErrorCodes.CONFIG, `segment '${name}': stream ${i} has ${s.channels} channels, but a coupling splits the channels into two equal halves; use an even channel count (RevBiFPN uses multiples of 16).`);
    }
    return new MBConv(
      `${name}/${which}${i}`,
      { ...convOptions(options), inChannels: s.channels / 2, outChannels: s.channels / 2, kernel: kernelOf(s), expandRatio: s.expandRatio, seRatio: s.seRatio, zeroInitLastGamma: options.zeroInitLastGamma },
      params.scope(`${which}${i}`),
    );
  };
  const channels = streams.map((s) => s.channels);
  const pairs = streams.map((s, i) => ({ f: half(s, i, 'F'), g: half(s, i, 'G') }));
  return streamCouplings(name, pairs, (xs) => checkStreams(name, xs, channels), options.fixedPoint) as ReversibleSegment & Module;
}

/** The same coupling as a one-stream `streamBlocks`, acting on the last of `carried + 1` streams (the others pass through). */
export function carriedCoupling(block: ReversibleSegment, carried: number, name = block.name): ReversibleSegment {
  const [f, g] = block.updates.map((u) => u.terms[0].transform);
  return coupling({ name, f, g, carried, fixedPoint: block.fixedPoint });
}

export interface SiloBlockOptions extends ConvSettings {
  readonly name: string;
  readonly streams: readonly StreamConfig[];
  /** The new stream a growing silo creates. */
  readonly grow?: StreamConfig | undefined;
}

/**
 * A RevSilo with RevBiFPN's MBConv transforms (docs/techniques.md §2.3): f_{i->j} = MBConv
 * C_i -> C_j, stride s = 2^(j-i), kernel 2s - 1 + p_i, source stream's ratios; g_{j->i} =
 * MBConv C_j -> C_i, stride 1, kernel 3 + p_j, target stream's ratios, then bilinear
 * upsampling by 2^(j-i).
 */
export function siloBlock(options: SiloBlockOptions, params: ParamFactory): ReversibleSegment & Module {
  const { name, streams, grow } = options;
  const all = grow ? [...streams, grow] : streams;
  const conv = convOptions(options);
  const segment = revSilo({
    name,
    channels: streams.map((s) => s.channels),
    grow: grow?.channels,
    fixedPoint: options.fixedPoint,
    f: (i, j) => {
      const stride = 2 ** (j - i);
      const src = all[i];
      const creates = j === streams.length;
      return new MBConv(
        `${name}/f${i}_${j}`,
        { ...conv, inChannels: src.channels, outChannels: all[j].channels, stride, kernel: 2 * stride - 1 + (src.pad ?? 0), expandRatio: src.expandRatio, seRatio: src.seRatio, zeroInitLastGamma: !creates && options.zeroInitLastGamma },
        params.scope(`f${i}_${j}`),
      );
    },
    g: (j, i) =>
      new MBConv(
        `${name}/g${j}_${i}`,
        { ...conv, inChannels: all[j].channels, outChannels: all[i].channels, kernel: 3 + (all[j].pad ?? 0), expandRatio: all[i].expandRatio, seRatio: all[i].seRatio, upsample: 2 ** (j - i), zeroInitLastGamma: options.zeroInitLastGamma },
        params.scope(`g${j}_${i}`),
      ),
  });
  return segment as ReversibleSegment & Module;
}

/**
 * Invertible space-to-depth by `block` (docs/techniques.md §2.4's stem): [N, H, W, C] ->
 * [N, H/b, W/b, b*b*C]; inverse and one-pass backward are depth-to-space. No parameters.
 */
export function spaceToDepthBlock(name: string, block: number): Module {
  const check = (x: tf.Tensor) => {
    const [, h, w] = x.shape as number[];
    if (x.rank !== 4 || h % block !== 0 || w % block !== 0) {
      throw new TapfitError(ErrorCodes.SHAPE, `segment '${name}': space-to-depth by ${block} needs [N, H, W, C] with H and W divisible by ${block}, got [${x.shape}]; resize or crop the input.`);
    }
  };
  return {
    name,
    params: [],
    forward: ([x]) => {
      check(x);
      return [spaceToDepth(x, block)];
    },
    inverse: ([y]) => [depthToSpace(y, block)],
    backward: ([y], [dy]) => ({ xs: [depthToSpace(y, block)], dxs: [dy ? depthToSpace(dy, block) : null], grads: [] }),
    outputShapes: ([s]) => [[s[0], s[1] === null ? null : s[1] / block, s[2] === null ? null : s[2] / block, s[3] === null ? null : s[3] * block * block]],
  };
}

/**
 * The stem's channel tiling (docs/techniques.md §2.4): `channels` output channels, channel
 * k a copy of input channel k mod C_in (RGB repeated, the remainder from the first ones).
 * Not invertible; it has no parameters, so nothing is differentiated through it.
 */
export function tileChannelsBlock(name: string, channels: number): Module {
  return {
    name,
    params: [],
    forward: ([x]) => [tileChannels(x, channels)],
    outputShapes: ([s]) => [[...s.slice(0, -1), channels]],
  };
}

function tileChannels(x: tf.Tensor, channels: number): tf.Tensor {
  const c = x.shape[x.rank - 1];
  if (c === channels) return x;
  const parts: tf.Tensor[] = [];
  for (let have = 0; have < channels; have += c) {
    const take = Math.min(c, channels - have);
    parts.push(take === c ? x : tf.slice(x, x.shape.map(() => 0), [...x.shape.slice(0, -1), take]));
  }
  return parts.length === 1 ? parts[0] : tf.concat(parts, x.rank - 1);
}

/** A plain segment's view of a module (no inverse): the stored twin's piece. */
export function storedPiece(module: Segment): Segment {
  return { name: module.name, params: module.params, forward: (xs, ctx) => module.forward(xs, ctx) };
}
