import type * as tf from '@tensorflow/tfjs';

/** Reads some host-side state and returns the function that sets it back to what it read. */
export type HostStateSnapshot = () => () => void;

const tied = new WeakMap<tf.Variable, HostStateSnapshot[]>();

/**
 * Ties host-side (JavaScript) state that a training forward or backward moves, such as
 * call counters, to a variable of the model. Measurements that run training forwards and
 * backwards and then put the model's variables back (`profileSegments`, so the
 * `memoryBudget` plugin) put the tied state back too. `snapshot` is called once before
 * they run; the function it returns after each run, so it sets the state to what the
 * snapshot read (it does not undo one run).
 */
export function tieHostState(variable: tf.Variable, snapshot: HostStateSnapshot): void {
  const list = tied.get(variable);
  if (list) list.push(snapshot);
  else tied.set(variable, [snapshot]);
}

/** Snapshots of the host state tied to `variables`; the returned function restores them all. */
export function snapshotHostState(variables: readonly tf.Variable[]): () => void {
  const restores = variables.flatMap((v) => tied.get(v) ?? []).map((snapshot) => snapshot());
  return () => restores.forEach((restore) => restore());
}
