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
