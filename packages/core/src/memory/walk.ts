import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { Segment, SegmentContext } from '../model/segment';
import type { MemoryPolicy } from '../step/memory-plan';
import { gradients, untaped } from './tape';

/** One segment as the walk sees it. */
export interface Level {
  readonly segment: Segment;
  readonly policy: MemoryPolicy;
  /** The segment's variables that get gradients. */
  readonly variables: readonly tf.Variable[];
}

type Grad = tf.Tensor | null;

/** What a level hands back to the one above: the gradient w.r.t. its input, and that input (kept or rebuilt). */
export interface Walk {
  readonly dxs: Grad[];
  readonly xs: tf.Tensor[];
  /** Whether the receiver must dispose `xs` (false: a level above still holds them). */
  readonly owned: boolean;
}

/** The end of the chain: receives the last segment's outputs and returns their gradient. */
export type Head = (xs: tf.Tensor[], owned: boolean, walk: SegmentWalk) => Walk;

/**
 * One training step over a chain of segments, with one gradient call per segment.
 *
 * The TF.js tape keeps every backward intermediate until `tf.grads` returns, so one
 * `tf.grads` over the whole model holds them all. Here every segment gets its own
 * gradient call instead: the walk goes down the chain segment by segment, keeping only
 * what each segment's policy asks for, computes the loss at the bottom, and on the way
 * back up runs one local vector-Jacobian product per segment, frees it, and moves on.
 *
 * - `store`: the segment's forward runs under its own tape, and the rest of the chain
 *   runs inside that tape's forward function (untaped); the tape keeps what plain
 *   autodiff would keep, and the backward reuses it.
 * - `recompute`: keep the input only; re-run the forward (ctx.recomputing) for the VJP.
 * - `invert`: keep nothing; rebuild the input from the output with `inverse`, or
 *   rebuild and differentiate in one pass with the segment's `backward` when it has one.
 *
 * Parameter gradients accumulate by variable name in kept tensors the caller owns.
 */
export class SegmentWalk {
  private readonly grads = new Map<string, tf.Tensor>();
  private readonly recomputeCtx: SegmentContext;

  constructor(
    private readonly levels: readonly Level[],
    private readonly ctx: SegmentContext,
    private readonly head: Head,
    /** Whether the gradient w.r.t. the chain's input is wanted (no for a data batch). */
    private readonly inputNeedsGrad = false,
  ) {
    this.recomputeCtx = { ...ctx, recomputing: true };
  }

  /** Runs the step on `xs` (not disposed). Returns the parameter gradients by name: kept tensors the caller disposes. */
  run(xs: tf.Tensor[]): Map<string, tf.Tensor> {
    try {
      const top = this.descend(0, xs, false);
      if (top.owned) release(top.xs, xs);
      release(top.dxs);
      return this.grads;
    } catch (err) {
      this.dispose();
      throw err;
    }
  }

  /** Frees the accumulated gradients (after a failure). */
  dispose(): void {
    tf.dispose([...this.grads.values()]);
    this.grads.clear();
  }

  /** Adds gradients of `variables` (null: no gradient) to the running sums. */
  accumulate(variables: readonly tf.Variable[], grads: readonly Grad[]): void {
    variables.forEach((v, k) => {
      const g = grads[k];
      if (!g) return;
      const previous = this.grads.get(v.name);
      if (!previous) {
        this.grads.set(v.name, tf.keep(g));
        return;
      }
      this.grads.set(v.name, tf.keep(tf.add(previous, g)));
      tf.dispose([previous, g]);
    });
  }

  private needsInputGrad(i: number): boolean {
    return inputGradNeeded(this.levels, i, this.inputNeedsGrad);
  }

  private descend(i: number, xs: tf.Tensor[], owned: boolean): Walk {
    if (i === this.levels.length) return this.head(xs, owned, this);
    const level = this.levels[i];
    if (!level.variables.length && !this.needsInputGrad(i)) return this.passThrough(i, xs, owned);
    switch (level.policy) {
      case 'store':
        return this.store(i, xs, owned);
      case 'recompute':
        return this.recompute(i, xs, owned);
      case 'invert':
        return this.invert(i, xs, owned);
    }
  }

  private store(i: number, xs: tf.Tensor[], owned: boolean): Walk {
    const level = this.levels[i];
    const needDx = this.needsInputGrad(i);
    let dys: Grad[] = [];
    try {
      const { value, grads } = gradients(
        () => {
          const ys = forwardOf(level.segment, xs, this.ctx);
          // The rest of the chain runs off this tape; its outputs' gradient comes back as dys.
          const below = untaped(() => this.descend(i + 1, ys, false));
          dys = below.dxs.map((d) => d && tf.keep(d)); // needed after this forward scope ends
          return seed(ys, dys);
        },
        [...(needDx ? xs : []), ...level.variables],
      );
      value.dispose();
      return { dxs: this.collect(level, grads, needDx, xs.length), xs, owned };
    } finally {
      release(dys);
    }
  }

  private recompute(i: number, xs: tf.Tensor[], owned: boolean): Walk {
    const level = this.levels[i];
    const needDx = this.needsInputGrad(i);
    const below = this.descend(i + 1, forwardOf(level.segment, xs, this.ctx), true);
    if (below.owned) release(below.xs);
    const grads = localVjp(level, xs, below.dxs, needDx, this.recomputeCtx);
    release(below.dxs);
    return { dxs: this.collect(level, grads, needDx, xs.length), xs, owned };
  }

  private invert(i: number, xs: tf.Tensor[], owned: boolean): Walk {
    const level = this.levels[i];
    const needDx = this.needsInputGrad(i);
    const ys = forwardOf(level.segment, xs, this.ctx);
    if (owned) release(xs);
    const below = this.descend(i + 1, ys, true);
    if (owned && level.segment.backward) {
      // Rebuild the input and differentiate in one pass (Segment.backward).
      const r = backwardOf(level, below.xs, below.dxs, needDx, this.recomputeCtx);
      if (below.owned) release(below.xs);
      release(below.dxs);
      this.accumulate(level.variables, r.grads);
      return { dxs: r.dxs, xs: r.xs, owned };
    }
    // An input still held above (owned = false) needs no rebuilding.
    const input = owned ? inverseOf(level.segment, below.xs, this.recomputeCtx) : xs;
    if (below.owned) release(below.xs);
    const grads = localVjp(level, input, below.dxs, needDx, this.recomputeCtx);
    release(below.dxs);
    return { dxs: this.collect(level, grads, needDx, input.length), xs: input, owned };
  }

  /** A segment with nothing to differentiate (no parameters, nothing above needs its input gradient). */
  private passThrough(i: number, xs: tf.Tensor[], owned: boolean): Walk {
    const below = this.descend(i + 1, forwardOf(this.levels[i].segment, xs, this.ctx), true);
    if (below.owned) release(below.xs);
    release(below.dxs);
    return { dxs: xs.map(() => null), xs, owned };
  }

  /** Splits a local gradient list into input gradients (returned) and parameter gradients (accumulated). */
  private collect(level: Level, grads: Grad[], needDx: boolean, inputs: number): Grad[] {
    const dxs = needDx ? grads.slice(0, inputs) : new Array<Grad>(inputs).fill(null);
    this.accumulate(level.variables, needDx ? grads.slice(inputs) : grads);
    return dxs;
  }
}

/** Whether level `i` must return the gradient w.r.t. its input: something above it has parameters. */
export function inputGradNeeded(levels: readonly Level[], i: number, inputNeedsGrad = false): boolean {
  return inputNeedsGrad || levels.slice(0, i).some((l) => l.variables.length > 0);
}

/**
 * The loss at the bottom of the walk: its gradient w.r.t. the last output starts the
 * backward, and variables the loss reads itself (a weight penalty) get gradients too.
 */
export function lossHead(
  loss: (forward: () => tf.Tensor) => tf.Scalar,
  variables: readonly tf.Variable[],
  lastSegment: string,
): { head: Head; value(): tf.Scalar | undefined } {
  let value: tf.Scalar | undefined;
  const head: Head = (xs, owned, walk) => {
    if (xs.length !== 1) {
      throw new TapfitError(ErrorCodes.SHAPE, `the last segment '${lastSegment}' returns ${xs.length} tensors, but the loss takes one; end the model with a segment that returns a single tensor.`);
    }
    const r = gradients(() => loss(() => xs[0]), [xs[0], ...variables]);
    value = tf.keep(r.value as tf.Scalar);
    walk.accumulate(variables, r.grads.slice(1));
    return { dxs: [r.grads[0]], xs, owned };
  };
  return { head, value: () => value };
}

/** The segment's forward in its own tidy; outputs are always new handles (so ownership stays simple). */
export function forwardOf(segment: Segment, xs: tf.Tensor[], ctx: SegmentContext): tf.Tensor[] {
  return tf.tidy(() => fresh(xs, checked(segment, 'forward', segment.forward(xs, ctx))));
}

export function inverseOf(segment: Segment, ys: tf.Tensor[], ctx: SegmentContext): tf.Tensor[] {
  return tf.tidy(() => fresh(ys, checked(segment, 'inverse', segment.inverse!(ys, ctx))));
}

/**
 * The segment's `backward`: its rebuilt input, the input gradients (all null unless
 * `needDx`) and the gradients of the level's variables, as new handles (none is one of
 * `ys` or `dys`, none appears twice), so the walk may free each independently.
 */
export function backwardOf(level: Level, ys: tf.Tensor[], dys: Grad[], needDx: boolean, ctx: SegmentContext): { xs: tf.Tensor[]; dxs: Grad[]; grads: Grad[] } {
  const { segment, variables } = level;
  const out = tf.tidy(() => {
    const r = segment.backward!(ys, dys, variables, ctx);
    const xs = checked(segment, 'backward().xs', r?.xs);
    const grads = r.grads;
    if (!Array.isArray(r.dxs) || r.dxs.length !== xs.length || !Array.isArray(grads) || grads.length !== variables.length) {
      throw new TapfitError(
        ErrorCodes.SHAPE,
        `segment '${segment.name}': backward() must return { xs, dxs, grads } with one gradient (or null) per rebuilt input and per variable; got ${xs.length} inputs, ${r.dxs?.length} input gradients, ${grads?.length} gradients for ${variables.length} variables.`,
      );
    }
    const taken = new Set<tf.Tensor>([...ys, ...dys.filter((d): d is tf.Tensor => d !== null)]);
    const own = (t: tf.Tensor): tf.Tensor => {
      const mine = taken.has(t) ? tf.clone(t) : t;
      taken.add(mine);
      return mine;
    };
    const byIndex = (ts: readonly Grad[]): Record<number, tf.Tensor> => Object.fromEntries(ts.flatMap((t, k) => (t ? [[k, own(t)]] : [])));
    return { xs: xs.map(own), dxs: needDx ? byIndex(r.dxs) : {}, grads: byIndex(grads) };
  });
  return { xs: out.xs, dxs: out.xs.map((_, k) => out.dxs[k] ?? null), grads: variables.map((_, k) => out.grads[k] ?? null) };
}

/**
 * Gradients of <forward(xs), dys> w.r.t. [xs if needDx, ...variables], re-running the
 * forward under a tape that lives only for this call.
 */
export function localVjp(level: Level, xs: tf.Tensor[], dys: Grad[], needDx: boolean, ctx: SegmentContext): Grad[] {
  const targets = [...(needDx ? xs : []), ...level.variables];
  if (!targets.length || dys.every((d) => !d)) return targets.map(() => null);
  const { value, grads } = gradients(() => seed(level.segment.forward(xs, ctx), dys), targets);
  value.dispose();
  return grads;
}

/**
 * A scalar whose gradient w.r.t. `ys` is exactly `dys` (its value is 0): starts a
 * tape's backward from given output gradients, even ones computed after the tape's
 * forward (store), with no arithmetic on the outputs.
 */
function seed(ys: tf.Tensor[], dys: Grad[]): tf.Scalar {
  const flowing = ys.filter((_, k) => dys[k]);
  const grads = dys.filter((d): d is tf.Tensor => d !== null);
  if (!flowing.length) return tf.scalar(0);
  const op = tf.customGrad(() => ({ value: tf.scalar(0), gradFunc: () => grads.map((g) => tf.clone(g)) }));
  return op(...flowing) as tf.Scalar;
}

function checked(segment: Segment, what: string, out: unknown): tf.Tensor[] {
  if (!Array.isArray(out) || !out.every((t) => t instanceof tf.Tensor)) {
    throw new TapfitError(ErrorCodes.SHAPE, `segment '${segment.name}': ${what}() must return an array of tensors.`);
  }
  return out;
}

/** Outputs that are inputs passed through get their own handle (same data). */
function fresh(inputs: tf.Tensor[], outputs: tf.Tensor[]): tf.Tensor[] {
  return outputs.map((t, k) => (inputs.includes(t) || outputs.indexOf(t) !== k ? tf.clone(t) : t));
}

/** Disposes tensors (skipping nulls and anything in `keep`). */
function release(tensors: readonly Grad[], keep: readonly tf.Tensor[] = []): void {
  for (const t of tensors) if (t && !keep.includes(t)) t.dispose();
}
