import { releaseTape, wrapGradients } from './engine-internals';

let installed = false;

/**
 * The engine keeps the tensors a gradient tape saves until its backward ends; when
 * the forward or the backward throws (a refused allocation, a missing kernel), it
 * never frees them, and they stay live with nothing left to dispose them. This
 * frees them when a top-level gradient (tf.grads, tf.variableGrads, ...) throws.
 * `selectBackend` and the memory guard install it. Idempotent.
 */
export function installTapeRelease(): void {
  if (installed) return;
  installed = true;
  wrapGradients((gradients) => (f, xs, dy, allowNoGradients) => {
    try {
      return gradients(f, xs, dy, allowNoGradients);
    } catch (err) {
      releaseTape(); // only at the top level: an outer tape still needs its own saved tensors
      throw err;
    }
  });
}
