import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';

/** Who rebuilds the model and which option loads code into it, for the error's wording. */
export interface RebuildContext {
  /** e.g. "each stage's worker", "each asyncTrain worker". */
  builder: string;
  /** The option that names a module the worker loads first, e.g. 'setupModule'. */
  setupOption: string;
}

/**
 * A layers model rebuilt in a worker thread from the calling thread's JSON topology. A
 * class registered only on the calling thread (a custom layer, initializer, regularizer,
 * ...) is unknown to the worker's own TF.js: name it and say where to register it,
 * instead of tfjs's multi-line list of reasons, which a one-line error would cut.
 */
export async function rebuildLayersModelInWorker(topology: unknown, where: RebuildContext): Promise<tf.LayersModel> {
  try {
    return await tf.models.modelFromJSON(topology as never);
  } catch (err) {
    const unknown = /^Unknown (\w+): ([^\s.]+)\./.exec(err instanceof Error ? err.message : '');
    if (!unknown) throw err;
    const [, kind, name] = unknown;
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `cannot rebuild the model's ${kind} class '${name}' from its JSON: ${where.builder} builds the model with its own TF.js, which knows the built-in classes only, ` +
        `not those registered on the calling thread. Register it in a module passed as ${where.setupOption} (at its top level or in its setup(): tf.serialization.registerClass(${name}))`,
      { cause: err },
    );
  }
}
