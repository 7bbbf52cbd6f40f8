import * as tf from '@tensorflow/tfjs';

/**
 * Runs `fn` as if no gradient were being recorded, even inside the forward function
 * of an outer `tf.grads`. The segment executor nests one segment's `tf.grads` inside
 * another's forward; without this the inner ops would land on the outer tape (kept
 * alive, and the inner backward taped for second derivatives), and the inner call
 * would reset the engine's active tape (backend-notes.md §4).
 */
export function untaped<T>(fn: () => T): T {
  const state = tf.engine().state;
  const { activeTape, gradientDepth } = state;
  state.gradientDepth = 0;
  try {
    return fn();
  } finally {
    state.activeTape = activeTape;
    state.gradientDepth = gradientDepth;
  }
}

/**
 * `tf.engine().gradients` with every variable allowed to have no gradient (null). If `f`
 * or the backward throws, the tape's saved tensors are freed too (the engine keeps
 * them until a gradient call finishes, so a failed one would leak them).
 */
export function gradients(f: () => tf.Tensor, xs: tf.Tensor[], dy?: tf.Tensor): { value: tf.Tensor; grads: (tf.Tensor | null)[] } {
  try {
    return tf.engine().gradients(f, xs, dy, true);
  } catch (err) {
    const state = tf.engine().state;
    if (state.gradientDepth === 0 && state.activeTape) {
      for (const node of state.activeTape) tf.dispose(node.saved ?? []);
      state.activeTape = null as unknown as typeof state.activeTape;
    }
    throw err;
  }
}
