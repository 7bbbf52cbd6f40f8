import * as tf from '@tensorflow/tfjs';
import type { SegmentContext } from '@tapfit/core';
import { ChannelHalves } from '../reversible/layout';
import type { Update } from '../reversible/program';
import { checkProgram, ReversibleSegment } from '../reversible/reversible-segment';
import { transform, type Transform } from '../reversible/transform';

/** A transform, or a plain function of the half (with no variables of its own). */
export type TransformLike = Transform | ((x: tf.Tensor, ctx: SegmentContext) => tf.Tensor);

export interface CouplingOptions {
  readonly name: string;
  /** F: first half -> second half's update. Any function (need not be invertible). */
  readonly f: TransformLike;
  /** G: updated second half -> first half's update. */
  readonly g: TransformLike;
  /**
   * Streams passed through unchanged before the coupled one (e.g. a U-Net's skips carried
   * down a chain of segments): the coupling acts on the last stream. Default 0.
   */
  readonly carried?: number | undefined;
  /** Fraction bits of exact fixed-point arithmetic (reversible/fixed-point.ts); absent or 0: float32. */
  readonly fixedPoint?: number | undefined;
}

export function asTransform(t: TransformLike, name: string): Transform {
  return typeof t === 'function' ? transform(name, t) : t;
}

/**
 * The RevNet additive coupling on one stream (docs/techniques.md §2.2): with the channel
 * halves (x1, x2),
 *
 *   y2 = x2 + F(x1),   y1 = x1 + G(y2),   y = concat(y1, y2)
 *   inverse: x1 = y1 - G(y2),   x2 = y2 - F(x1).
 *
 * §3.2 writes the same block with the halves' names swapped. Odd channel counts are
 * refused (naming the segment).
 */
export function coupling(options: CouplingOptions): ReversibleSegment {
  const carried = options.carried ?? 0;
  const layout = new ChannelHalves(options.name, [carried]);
  const x1 = layout.first(carried);
  const updates: Update[] = [
    { target: x1 + 1, terms: [{ source: x1, transform: asTransform(options.f, `${options.name}/F`) }] },
    { target: x1, terms: [{ source: x1 + 1, transform: asTransform(options.g, `${options.name}/G`) }] },
  ];
  checkProgram(options.name, carried + 2, updates);
  return new ReversibleSegment({ name: options.name, updates, layout, fixedPoint: options.fixedPoint });
}

/**
 * One coupling per stream, all in one segment (RevBiFPN's "per-stream reversible block on
 * every existing stream", docs/techniques.md §2.4): stream i gets its own F_i, G_i.
 */
export function streamCouplings(name: string, pairs: readonly { f: TransformLike; g: TransformLike }[], checkInput?: (xs: readonly tf.Tensor[]) => void, fixedPoint?: number): ReversibleSegment {
  const streams = pairs.map((_, i) => i);
  const layout = new ChannelHalves(name, streams);
  const updates: Update[] = pairs.flatMap((p, i) => {
    const x1 = layout.first(i);
    return [
      { target: x1 + 1, terms: [{ source: x1, transform: asTransform(p.f, `${name}/F${i}`) }] },
      { target: x1, terms: [{ source: x1 + 1, transform: asTransform(p.g, `${name}/G${i}`) }] },
    ];
  });
  checkProgram(name, 2 * pairs.length, updates);
  return new ReversibleSegment({ name, updates, layout, checkInput, fixedPoint });
}
