import * as tf from '@tensorflow/tfjs';
import { vjp, type SegmentContext } from '@tapfit/core';
import type { Quantizer } from './fixed-point';
import type { Transform } from './transform';

/** One term of an update: `transform(slots[source])`. */
export interface Term {
  readonly source: number;
  readonly transform: Transform;
}

/**
 * One additive update of a reversible program: `slots[target] += sum of terms`, or, when
 * `creates`, a new slot (appended) that is the sum. The target is never a source, so the
 * update can be undone by subtracting the same terms (docs/techniques.md §2.2-§2.3).
 */
export interface Update {
  readonly target: number;
  readonly creates?: boolean;
  readonly terms: readonly Term[];
}

type Grad = tf.Tensor | null;

/**
 * Tensors this call made, which it may free early to keep its peak at one transform's
 * working set; the caller's inputs are never freed.
 */
class Owned {
  private readonly mine = new Set<tf.Tensor>();
  add<T extends tf.Tensor>(t: T): T {
    this.mine.add(t);
    return t;
  }
  free(t: tf.Tensor | null | undefined): void {
    if (t && this.mine.delete(t)) t.dispose();
  }
}

/**
 * The sum of an update's terms, each in its own scope (only the sum survives), rounded to
 * the fixed-point grid when the segment computes exactly (`quantize`, see fixed-point.ts).
 */
function termSum(update: Update, slots: readonly tf.Tensor[], ctx: SegmentContext, quantize?: Quantizer): tf.Tensor {
  return tf.tidy(() => {
    const sum = update.terms.map((t) => t.transform.apply(slots[t.source], ctx)).reduce((a, b) => tf.add(a, b));
    return quantize ? quantize(sum) : sum;
  });
}

/** Runs the updates in order on `slots` (not freed); returns the new slot list. */
export function runUpdates(slots: readonly tf.Tensor[], updates: readonly Update[], ctx: SegmentContext, quantize?: Quantizer): tf.Tensor[] {
  const out = [...slots];
  const owned = new Owned();
  for (const u of updates) {
    const sum = owned.add(termSum(u, out, ctx, quantize));
    if (u.creates) {
      out.push(sum);
      continue;
    }
    const before = out[u.target];
    out[u.target] = owned.add(tf.add(before, sum));
    owned.free(before);
    owned.free(sum);
  }
  return out;
}

/** Undoes the updates, last first, from their output `slots` (not freed): created slots are dropped. */
export function invertUpdates(slots: readonly tf.Tensor[], updates: readonly Update[], ctx: SegmentContext, quantize?: Quantizer): tf.Tensor[] {
  const out = [...slots];
  const owned = new Owned();
  for (const u of [...updates].reverse()) {
    if (u.creates) {
      owned.free(out.pop());
      continue;
    }
    const sum = termSum(u, out, ctx, quantize);
    const after = out[u.target];
    out[u.target] = owned.add(tf.sub(after, sum));
    owned.free(after);
    sum.dispose();
  }
  return out;
}

/**
 * Rebuilds the program's input from its output and back-propagates in the same pass
 * (RevNet's backward, docs/techniques.md §3.3, generalised to RevSilo's passes as in
 * §2.5): last update first, each term is evaluated once under its own tape seeded with
 * the target's gradient; its value is subtracted from the target (rebuilding it), its
 * input gradient added to the source's, its parameter gradients to the sums. The target's
 * own gradient passes through unchanged (the identity path). Peak: the slots, their
 * gradients and one term's tape. With `quantize`, the terms' sum is rounded as in the
 * forward (same terms, same order) and its gradient passes straight through.
 */
export function backwardUpdates(
  slots: readonly tf.Tensor[],
  grads: readonly tf.Tensor[],
  updates: readonly Update[],
  variables: readonly tf.Variable[],
  ctx: SegmentContext,
  quantize?: Quantizer,
): { slots: tf.Tensor[]; grads: tf.Tensor[]; paramGrads: Grad[] } {
  const xs = [...slots];
  const dxs = [...grads];
  const sums: Grad[] = variables.map(() => null);
  const owned = new Owned();
  for (const u of [...updates].reverse()) {
    const dy = dxs[u.target];
    let total: tf.Tensor | undefined;
    for (const term of u.terms) {
      const source = xs[term.source];
      const r = vjp(() => term.transform.apply(source, ctx), [source, ...variables], dy);
      const value = r.value === source ? tf.clone(r.value) : r.value; // an identity transform hands its input back
      total = total ? addFree(total, value) : value;
      const dSource = r.grads[0];
      if (dSource) {
        const previous = dxs[term.source];
        dxs[term.source] = owned.add(tf.add(previous, dSource));
        owned.free(previous);
        if (dSource !== dy) dSource.dispose();
      }
      r.grads.slice(1).forEach((g, k) => {
        if (!g) return;
        const previous = sums[k];
        sums[k] = previous ? addFree(previous, g) : g === dy ? tf.clone(g) : g;
      });
    }
    if (u.creates) {
      owned.free(xs.pop());
      owned.free(dxs.pop());
      total?.dispose();
      continue;
    }
    const rounded = quantize ? tf.tidy(() => quantize(total!)) : total!;
    const after = xs[u.target];
    xs[u.target] = owned.add(tf.sub(after, rounded));
    owned.free(after);
    total?.dispose();
    if (rounded !== total) rounded.dispose();
  }
  return { slots: xs, grads: dxs, paramGrads: sums };
}

/** a + b, freeing both (neither may be needed afterwards). */
function addFree(a: tf.Tensor, b: tf.Tensor): tf.Tensor {
  const s = tf.add(a, b);
  a.dispose();
  b.dispose();
  return s;
}
