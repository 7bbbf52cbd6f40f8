import * as tf from '@tensorflow/tfjs';
import { engineGradients, gradientDepth, recordTape, releaseTape, withTapeSuspended, type TapeNode } from '../backend/engine-internals';
import { ErrorCodes, TapfitError } from '../errors';

/**
 * Runs `fn` as if no gradient were being recorded, even inside the forward function
 * of an outer `tf.grads`. The segment executor nests one segment's `tf.grads` inside
 * another's forward; without this the inner ops would land on the outer tape (kept
 * alive, and the inner backward taped for second derivatives), and the inner call
 * would reset the engine's active tape (docs/backends.md §4).
 */
export function untaped<T>(fn: () => T): T {
  return withTapeSuspended(fn);
}

type Grad = tf.Tensor | null;

/**
 * The engine's `gradients(f, xs, dy, true)` (every target may get null), with a backward
 * that frees as it goes: each node's saved tensors and its outputs' gradients are
 * disposed as soon as the node's backward has run, instead of when the whole backward
 * returns, so a backward's peak is what its current node needs rather than everything
 * it has computed. Same gradient functions, same order, same sums. Inside an outer
 * taped gradient (second derivatives) it defers to the engine. If `f` or the backward
 * throws, the tape's saved tensors (and f's result) are freed too.
 */
export function gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor): { value: tf.Tensor; grads: Grad[] } {
  if (gradientDepth() !== 0) return engineGradients(f, xs, dy, true);
  let value: tf.Tensor | undefined;
  try {
    const { y, tape } = recordTape(f);
    value = y;
    const grads = backward(tape, xs, y, dy);
    releaseTape();
    return { value: y, grads };
  } catch (err) {
    releaseTape();
    value?.dispose(); // f's result, when the backward failed
    throw err;
  }
}

/**
 * `f()` and its vector-Jacobian product with `dy` w.r.t. `targets` (null where no
 * gradient flows), on a tape that lives only for this call and frees as it goes. For a
 * `Segment.backward` that differentiates its parts one at a time.
 */
export function vjp(f: () => tf.Tensor, targets: tf.Tensor[], dy: tf.Tensor): { value: tf.Tensor; grads: Grad[] } {
  return gradients(f, targets, dy);
}

/** Backpropagates `dy` (default ones) from `y` to `xs` through `tape`, freeing what each node no longer needs. */
function backward(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor, dy?: tf.Tensor): Grad[] {
  const path = connecting(tape, xs, y);
  const onPath = new Set(path.map((n) => n.id));
  for (const node of tape) if (!onPath.has(node.id)) tf.dispose(node.saved ?? []); // nothing will read them
  const wanted = new Set(xs.map((x) => x.id));
  const found = tf.tidy(() => {
    const acc = new Map<number, tf.Tensor>([[y.id, dy ?? tf.onesLike(y)]]);
    // A gradient function may hand back a tensor it was given: free only what nothing else holds.
    const drop = (g: tf.Tensor | undefined): void => {
      if (g && g !== dy && ![...acc.values()].includes(g)) g.dispose();
    };
    for (let i = path.length - 1; i >= 0; i--) {
      const node = path[i];
      if (!node.gradient) {
        throw new TapfitError(
          ErrorCodes.GRADIENT,
          `cannot compute the gradient: no gradient function is registered for kernel '${node.kernelName}'. ` +
            `Register one (tf.registerGradient({ kernelName: '${node.kernelName}', ... })) or keep the op off the path from the trained variables to the loss.`,
        );
      }
      const thunks = node.gradient(node.outputs.map((o) => acc.get(o.id) ?? null));
      for (const [name, x] of Object.entries(node.inputs)) {
        if (!(name in thunks)) {
          throw new TapfitError(
            ErrorCodes.GRADIENT,
            `cannot backpropagate through input '${name}' of kernel '${node.kernelName}': its gradient function returns no entry for it. ` +
              `Fix the registered gradient of '${node.kernelName}' to return one function per input.`,
          );
        }
        const dx = tf.tidy(() => thunks[name]());
        const previous = acc.get(x.id);
        if (!previous) {
          acc.set(x.id, dx);
          continue;
        }
        acc.set(x.id, tf.add(previous, dx));
        drop(previous);
        drop(dx);
      }
      tf.dispose(node.saved ?? []);
      for (const o of node.outputs) {
        if (wanted.has(o.id)) continue;
        const g = acc.get(o.id);
        acc.delete(o.id);
        drop(g);
      }
    }
    // By position (a tidy returns containers of tensors, not nulls).
    return Object.fromEntries(xs.flatMap((x, k) => (acc.has(x.id) ? [[k, acc.get(x.id)!]] : [])));
  });
  return xs.map((_, k) => found[k] ?? null);
}

/** The tape nodes on a path from some x to y, inputs not depending on xs pruned (as tfjs-core's getFilteredNodesXToY). */
function connecting(tape: TapeNode[], xs: tf.Tensor[], y: tf.Tensor): TapeNode[] {
  const fromX = new Set(xs.map((x) => x.id));
  const nodesFromX = new Set<number>();
  for (const node of tape) {
    if (Object.values(node.inputs).some((t) => fromX.has(t.id))) {
      nodesFromX.add(node.id);
      for (const o of node.outputs) fromX.add(o.id);
    }
  }
  const toY = new Set([y.id]);
  const nodesToY = new Set<number>();
  for (let i = tape.length - 1; i >= 0; i--) {
    const node = tape[i];
    if (node.outputs.some((o) => toY.has(o.id))) {
      nodesToY.add(node.id);
      for (const t of Object.values(node.inputs)) toY.add(t.id);
    }
  }
  return tape
    .filter((n) => nodesFromX.has(n.id) && nodesToY.has(n.id))
    .map((n) => ({ ...n, inputs: Object.fromEntries(Object.entries(n.inputs).filter(([, t]) => fromX.has(t.id))) }));
}
