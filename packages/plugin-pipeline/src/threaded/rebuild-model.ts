import * as tf from '@tensorflow/tfjs';

/**
 * A stage's model, rebuilt in its worker from the calling thread's JSON topology. A class
 * registered only on the calling thread (a custom layer, initializer, regularizer, ...) is
 * unknown to the worker's own TF.js: name it and say where to register it, instead of
 * tfjs's multi-line list of reasons, which a one-line error would cut.
 */
export async function rebuildModel(topology: unknown): Promise<tf.LayersModel> {
  try {
    return await tf.models.modelFromJSON(topology as never);
  } catch (err) {
    const unknown = /^Unknown (\w+): ([^\s.]+)\./.exec(err instanceof Error ? err.message : '');
    if (!unknown) throw err;
    const [, kind, name] = unknown;
    throw new Error(
      `cannot rebuild the model's ${kind} class '${name}' from its JSON: each stage's worker builds the model with its own TF.js, which knows the built-in classes only, ` +
        `not those registered on the calling thread. Register it in a module passed as setupModule (at its top level or in its setup(): tf.serialization.registerClass(${name}))`,
    );
  }
}
