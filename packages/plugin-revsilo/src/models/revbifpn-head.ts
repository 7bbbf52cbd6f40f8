import * as tf from '@tensorflow/tfjs';
import { readParam, type SegmentContext } from '@tapfit/core';
import { MBConv } from '../blocks/mbconv';
import type { Module } from '../blocks/module';
import { convOptions, type ConvSettings, type StreamConfig } from '../blocks/stream-config';
import { checkStreams, streamShape } from '../blocks/streams';
import { activate } from '../ops/activations';
import { pointwise } from '../ops/conv';
import { Norm } from '../ops/norm';
import type { ParamFactory } from '../ops/params';
import { dropout } from '../ops/random';

export interface NeckOptions extends ConvSettings {
  readonly name: string;
  readonly streams: readonly StreamConfig[];
  /** C'_i: the neck's output channels per stream. */
  readonly neckChannels: readonly number[];
}

/** RevBiFPN's neck (docs/techniques.md §2.4): n_i = MBConv(z_i), C_i -> C'_i, stride 1, the stream's kernel and ratios. Not reversible. */
export function neckBlock(options: NeckOptions, params: ParamFactory): Module {
  const { name, streams, neckChannels } = options;
  const convs = streams.map(
    (s, i) =>
      new MBConv(
        `${name}/n${i}`,
        { ...convOptions(options), inChannels: s.channels, outChannels: neckChannels[i], kernel: s.kernel + (s.pad ?? 0), expandRatio: s.expandRatio, seRatio: s.seRatio },
        params.scope(`n${i}`),
      ),
  );
  const channels = streams.map((s) => s.channels);
  return {
    name,
    params: convs.flatMap((c) => c.params),
    forward: (xs, ctx) => {
      checkStreams(name, xs, channels);
      return xs.map((x, i) => convs[i].apply(x, ctx));
    },
    outputShapes: (shapes) => neckChannels.map((c, i) => streamShape(shapes[0], i, c)),
    dispose: () => convs.forEach((c) => c.dispose()),
  };
}

export interface HeadOptions extends ConvSettings {
  readonly name: string;
  readonly streams: readonly StreamConfig[];
  readonly neckChannels: readonly number[];
  /** Channels of the last 1x1 convolution before pooling (1280 in the paper). */
  readonly headChannels: number;
  readonly classes: number;
  /** Dropout before the classifier (replayed under recompute). */
  readonly dropout: number;
}

/**
 * RevBiFPN's classification head (docs/techniques.md §2.4): out = n_0; out = n_{i+1} +
 * MBConv_stride2(out) down to the lowest resolution; 1x1 conv + norm + activation to
 * `headChannels`; global average pool; dropout; dense to the classes (logits).
 */
export function headBlock(options: HeadOptions, params: ParamFactory): Module {
  const { name, streams, neckChannels, headChannels, classes } = options;
  const conv = convOptions(options);
  const downs = neckChannels.slice(0, -1).map(
    (c, i) =>
      new MBConv(
        `${name}/down${i}`,
        { ...conv, inChannels: c, outChannels: neckChannels[i + 1], stride: 2, kernel: 3 + (streams[i].pad ?? 0), expandRatio: streams[i].expandRatio, seRatio: streams[i].seRatio },
        params.scope(`down${i}`),
      ),
  );
  const last = neckChannels[neckChannels.length - 1];
  const w = params.create({ name: 'conv/kernel', shape: [last, headChannels], init: { stddev: Math.sqrt(2 / headChannels) } });
  const norm = new Norm(`${name}/conv/norm`, { kind: options.norm ?? 'batch', channels: headChannels, groups: options.groups, epsilon: options.epsilon, momentum: options.momentum }, params.scope('conv/norm'));
  const dense = params.create({ name: 'classifier/kernel', shape: [headChannels, classes], init: { stddev: 1 / Math.sqrt(headChannels) } });
  const bias = params.create({ name: 'classifier/bias', shape: [classes], init: 'zeros' });
  return {
    name,
    params: [...downs.flatMap((d) => d.params), w, ...norm.params, dense, bias],
    forward: (xs: tf.Tensor[], ctx: SegmentContext) => {
      checkStreams(name, xs, neckChannels);
      return tf.tidy(() => {
        let out = xs[0];
        downs.forEach((d, i) => {
          out = tf.add(xs[i + 1], d.apply(out, ctx));
        });
        const h = activate(options.activation ?? 'hardswish', norm.apply(pointwise(out, readParam(ctx, w)), ctx));
        const pooled = tf.mean(h, h.shape.slice(1, -1).map((_, a) => a + 1));
        return [tf.add(tf.matMul(dropout(pooled, options.dropout, `${name}/dropout`, ctx), readParam(ctx, dense)), readParam(ctx, bias))];
      });
    },
    outputShapes: (shapes) => [[shapes[0][0], classes]],
    dispose: () => {
      downs.forEach((d) => d.dispose());
      norm.dispose();
    },
  };
}
