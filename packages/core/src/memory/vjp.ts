import * as tf from '@tensorflow/tfjs';
import { gradients } from './tape';

type Grad = tf.Tensor | null;

/**
 * The value of a scalar function and its gradients w.r.t. `targets` (tensors or
 * variables; null where there is no path), by core's freeing backward (`memory/tape.ts`):
 * the same gradient functions in the same order as `tf.variableGrads`, so the numbers
 * are the same. For executors that differentiate one piece of a model at a time
 * (pipeline stages) instead of nesting `tf.grads` (docs/techniques.md §0.3).
 */
export function valueAndGradients(f: () => tf.Scalar, targets: readonly tf.Tensor[]): { value: tf.Scalar; grads: Grad[] } {
  const { value, grads } = gradients(f, [...targets]);
  return { value: value as tf.Scalar, grads };
}

/**
 * The vector-Jacobian product of `f` at its current inputs: the gradients of
 * `<f(), dys>` w.r.t. `targets`, seeded with `dys` exactly (no arithmetic on the outputs;
 * a null `dy` means no gradient flows from that output). `f` runs under a tape that lives
 * only for this call; its outputs are freed.
 */
export function vectorJacobianProduct(f: () => tf.Tensor[], targets: readonly tf.Tensor[], dys: readonly Grad[]): Grad[] {
  if (!targets.length || dys.every((d) => !d)) return targets.map(() => null);
  const { value, grads } = gradients(() => seeded(f(), dys), [...targets]);
  value.dispose();
  return grads;
}

/** A zero scalar whose gradient w.r.t. each output `ys[k]` is `dys[k]`. */
function seeded(ys: tf.Tensor[], dys: readonly Grad[]): tf.Scalar {
  if (ys.length !== dys.length) throw new Error(`vectorJacobianProduct: f returned ${ys.length} tensors but ${dys.length} output gradients were given.`);
  const flowing = ys.filter((_, k) => dys[k]);
  const grads = dys.filter((d): d is tf.Tensor => d !== null);
  if (!flowing.length) return tf.scalar(0);
  const op = tf.customGrad(() => ({ value: tf.scalar(0), gradFunc: () => grads.map((g) => tf.clone(g)) }));
  return op(...flowing) as tf.Scalar;
}
