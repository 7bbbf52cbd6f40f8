import { ErrorCodes, TapfitError } from '@tapfit/core';
import type { Update } from '../reversible/program';
import { checkProgram, ReversibleSegment } from '../reversible/reversible-segment';
import { asTransform, type TransformLike } from './coupling';
import { checkStreams, streamShape } from './streams';

export interface SiloOptions {
  readonly name: string;
  /** Channels of the input streams (stream 0 has the highest resolution). */
  readonly channels: readonly number[];
  /** Channels of the new, lower-resolution stream a growing silo creates. */
  readonly grow?: number | undefined;
  /** f_{i->j}, i < j (j = number of streams: the new stream). */
  readonly f?: ((i: number, j: number) => TransformLike) | undefined;
  /** g_{j->i}, j > i. */
  readonly g?: ((j: number, i: number) => TransformLike) | undefined;
  /** Fraction bits of exact fixed-point arithmetic (reversible/fixed-point.ts); absent or 0: float32. */
  readonly fixedPoint?: number | undefined;
}

/**
 * The F pass (docs/techniques.md §2.3), downward: y_0 = x_0, y_j = x_j + sum_{i<j} f_{i->j}(x_i),
 * and in a growing silo a new stream y_N = sum_{i<N} f_{i->N}(x_i). Each f reads the
 * pass's input x_i: updating j from the highest index down keeps the x_i (i < j) untouched
 * until every update that reads them has run.
 */
export function fPassUpdates(n: number, grow: boolean, f: (i: number, j: number) => TransformLike, name: string): Update[] {
  const updates: Update[] = [];
  const term = (i: number, j: number) => ({ source: i, transform: asTransform(f(i, j), `${name}/f${i}_${j}`) });
  if (grow) updates.push({ target: n, creates: true, terms: Array.from({ length: n }, (_, i) => term(i, n)) });
  for (let j = n - 1; j >= 1; j--) updates.push({ target: j, terms: Array.from({ length: j }, (_, i) => term(i, j)) });
  return updates;
}

/** The G pass, upward: z_{M-1} = y_{M-1}, z_i = y_i + sum_{j>i} g_{j->i}(y_j), lowest index first (each g reads the pass's input). */
export function gPassUpdates(m: number, g: (j: number, i: number) => TransformLike, name: string): Update[] {
  const updates: Update[] = [];
  for (let i = 0; i < m - 1; i++) {
    updates.push({ target: i, terms: Array.from({ length: m - 1 - i }, (_, k) => i + 1 + k).map((j) => ({ source: j, transform: asTransform(g(j, i), `${name}/g${j}_${i}`) })) });
  }
  return updates;
}

function siloSegment(options: SiloOptions, passes: { f: boolean; g: boolean }): ReversibleSegment {
  const { name, channels, grow } = options;
  const n = channels.length;
  if (!n || (passes.g && n + (grow ? 1 : 0) < 2)) {
    throw new TapfitError(ErrorCodes.CONFIG, `segment '${name}': a silo mixes at least two streams (got ${n}${grow ? ' plus a new one' : ''}); give it more streams or use a coupling.`);
  }
  if (grow !== undefined && !passes.f) throw new TapfitError(ErrorCodes.CONFIG, `segment '${name}': only a silo with an F pass can create a stream; use revSilo or fSilo.`);
  const need = (what: 'f' | 'g') => {
    const t = options[what];
    if (!t) throw new TapfitError(ErrorCodes.CONFIG, `segment '${name}': option '${what}' (the ${what === 'f' ? 'downsampling f_{i->j}' : 'upsampling g_{j->i}'} transforms) is missing.`);
    return t;
  };
  const m = n + (grow !== undefined ? 1 : 0);
  const updates = [...(passes.f ? fPassUpdates(n, grow !== undefined, need('f'), name) : []), ...(passes.g ? gPassUpdates(m, need('g'), name) : [])];
  checkProgram(name, n, updates);
  const outChannels = grow !== undefined ? [...channels, grow] : [...channels];
  return new ReversibleSegment({
    name,
    updates,
    checkInput: (xs) => checkStreams(name, xs, channels),
    fixedPoint: options.fixedPoint,
    outputShapes: (shapes) => outChannels.map((c, i) => streamShape(shapes[0], i, c)),
  });
}

/** The F pass alone as a segment (growing when `grow` is set). */
export function fSilo(options: SiloOptions): ReversibleSegment {
  return siloSegment(options, { f: true, g: false });
}

/** The G pass alone as a segment. */
export function gSilo(options: SiloOptions): ReversibleSegment {
  return siloSegment(options, { f: false, g: true });
}

/** RevSilo = G after F, one segment (N streams in; N, or N + 1 when `grow`, out). Inverse: F^-1(G^-1(z)). */
export function revSilo(options: SiloOptions): ReversibleSegment {
  return siloSegment(options, { f: true, g: true });
}
