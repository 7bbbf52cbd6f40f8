import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError, type Segment, type SegmentBackward, type SegmentContext } from '@tapfit/core';
import { fixedPointQuantizer, type Quantizer } from './fixed-point';
import { streamSlots, type SlotLayout } from './layout';
import { backwardUpdates, invertUpdates, runUpdates, type Update } from './program';

export interface ReversibleSegmentSpec {
  readonly name: string;
  readonly updates: readonly Update[];
  /** Streams to slots; default one slot per stream. */
  readonly layout?: SlotLayout | undefined;
  /** Throws a TapfitError naming the segment when `xs` cannot be its input. */
  readonly checkInput?: ((xs: readonly tf.Tensor[]) => void) | undefined;
  /** Output shapes for input shapes (batch included), for the tfjs-layers wrapper. */
  readonly outputShapes?: ((inputShapes: readonly tf.Shape[]) => tf.Shape[]) | undefined;
  /**
   * Fraction bits of exact fixed-point arithmetic (fixed-point.ts): inputs and update sums
   * are rounded to multiples of 2^-bits, so `inverse` rebuilds the input bit for bit.
   * Absent or 0: plain float32.
   */
  readonly fixedPoint?: number | undefined;
}

/**
 * A core `Segment` made of additive updates (a RevNet coupling, a RevSilo pass, or many of
 * them): `forward` runs them, `inverse` undoes them, and `backward` rebuilds the input and
 * back-propagates in one pass, so under policy `invert` nothing of it is kept and each of
 * its transforms is evaluated once more than in plain training (docs/techniques.md §2.5,
 * §3.3).
 */
export class ReversibleSegment implements Segment {
  readonly name: string;
  readonly params: tf.Variable[];
  readonly updates: readonly Update[];
  /** The fixed-point fraction bits, or undefined for plain float32. */
  readonly fixedPoint: number | undefined;
  private readonly layout: SlotLayout;
  private readonly quantize: Quantizer | undefined;
  /** Input slots the updates read or write (the others pass through untouched). */
  private readonly touched: Set<number>;
  /** Slots a `creates` update appends. */
  private readonly created: Set<number>;

  constructor(private readonly spec: ReversibleSegmentSpec) {
    this.name = spec.name;
    this.updates = spec.updates;
    this.layout = spec.layout ?? streamSlots;
    this.params = [...new Set(spec.updates.flatMap((u) => u.terms.flatMap((t) => t.transform.params)))];
    this.quantize = fixedPointQuantizer(spec.name, spec.fixedPoint);
    this.fixedPoint = this.quantize ? spec.fixedPoint : undefined;
    this.touched = new Set(spec.updates.flatMap((u) => [...(u.creates ? [] : [u.target]), ...u.terms.map((t) => t.source)]));
    this.created = new Set(spec.updates.filter((u) => u.creates).map((u) => u.target));
  }

  forward(xs: tf.Tensor[], ctx: SegmentContext): tf.Tensor[] {
    this.spec.checkInput?.(xs);
    return tf.tidy(() => this.layout.merge(runUpdates(this.roundedSlots(xs), this.updates, ctx, this.quantize)));
  }

  /**
   * The input as the forward computes with it: in exact arithmetic the streams the updates
   * touch are rounded to the grid, so `inverse` and `backward` rebuild this, not `xs`.
   */
  roundInput(xs: readonly tf.Tensor[]): tf.Tensor[] {
    return tf.tidy(() => this.layout.merge(this.roundedSlots(xs)));
  }

  /** Input streams the forward rounds (some slot of theirs touched; created slots are no input); none in float32. */
  get roundedStreams(): number[] {
    const inputs = [...this.touched].filter((slot) => !this.created.has(slot));
    return this.quantize ? [...new Set(inputs.map((slot) => this.layout.streamOf(slot)))] : [];
  }

  /** Whether output stream `k` always lies on this segment's grid: every slot of it rounded, updated or created here. */
  outputOnGrid(k: number): boolean {
    return this.quantize !== undefined && this.layout.slotsOf(k).every((slot) => this.touched.has(slot) || this.created.has(slot));
  }

  inverse(ys: tf.Tensor[], ctx: SegmentContext): tf.Tensor[] {
    return tf.tidy(() => this.layout.merge(invertUpdates(this.layout.split(ys), this.updates, ctx, this.quantize)));
  }

  backward(ys: tf.Tensor[], dys: (tf.Tensor | null)[], variables: readonly tf.Variable[], ctx: SegmentContext): SegmentBackward {
    if (dys.length !== ys.length) {
      throw new TapfitError(ErrorCodes.SHAPE, `segment '${this.name}': backward() got ${ys.length} outputs but ${dys.length} output gradients.`);
    }
    const out = tf.tidy(() => {
      const slots = this.layout.split(ys);
      const grads = this.layout.split(dys.map((d, k) => d ?? tf.zerosLike(ys[k])));
      const r = backwardUpdates(slots, grads, this.updates, variables, ctx, this.quantize);
      const xs = this.layout.merge(r.slots);
      const dxs = this.layout.merge(r.grads);
      return { xs, dxs, paramGrads: Object.fromEntries(r.paramGrads.flatMap((g, k) => (g ? [[k, g]] : []))) as Record<number, tf.Tensor> };
    });
    return { xs: out.xs, dxs: out.dxs, grads: variables.map((_, k) => out.paramGrads[k] ?? null) };
  }

  private roundedSlots(xs: readonly tf.Tensor[]): tf.Tensor[] {
    const q = this.quantize;
    // On the grid already after the first exact segment of a chain (rounding is idempotent).
    return this.layout.split(xs).map((x, i) => (q && this.touched.has(i) ? q(x) : x));
  }

  outputShapes(inputShapes: readonly tf.Shape[]): tf.Shape[] {
    return this.spec.outputShapes ? this.spec.outputShapes(inputShapes) : inputShapes.map((s) => [...s]);
  }

  /** Frees what the transforms keep between forwards. */
  dispose(): void {
    for (const u of this.updates) for (const t of u.terms) t.transform.dispose?.();
  }
}

/** Checks that `updates` are a valid program over `slots` slots (a target is never its own source; created slots are appended). */
export function checkProgram(segment: string, slots: number, updates: readonly Update[]): void {
  let n = slots;
  for (const u of updates) {
    const bad = (why: string): never => {
      throw new TapfitError(ErrorCodes.CONFIG, `segment '${segment}': ${why}; an update adds functions of other slots to its target (docs/techniques.md §2.3).`);
    };
    if (u.creates ? u.target !== n : !(u.target >= 0 && u.target < n)) bad(`update target ${u.target} is not ${u.creates ? `the next new slot (${n})` : `one of the ${n} slots`}`);
    for (const t of u.terms) {
      if (t.source === u.target) bad(`slot ${u.target} is updated with a function of itself, which cannot be undone`);
      if (!(t.source >= 0 && t.source < n)) bad(`term source ${t.source} is not one of the ${n} slots`);
    }
    if (!u.terms.length) bad(`the update of slot ${u.target} has no terms`);
    if (u.creates) n++;
  }
}
