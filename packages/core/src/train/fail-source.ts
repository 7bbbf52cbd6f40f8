import * as tf from '@tensorflow/tfjs';
import type { Batch } from '../data/data-source';

/**
 * Hands the trainer's failure to the source's iterator, as a generator's `throw()`: the
 * source frees what it holds and may say more (a datasetData shuffle buffer names itself
 * in a TAPFIT_E_MEMORY). Returns the error to rethrow: the source's, else `err`.
 * Trainer-internal (not exported from the package): sources implement `throw`, they do not call this.
 */
export async function failSource(it: Iterator<Batch> | AsyncIterator<Batch>, err: unknown): Promise<unknown> {
  if (!it.throw) return err;
  try {
    const r = await it.throw(err);
    if (!r.done) tf.dispose([r.value.x, r.value.y]); // a source that went on: its batch never reaches a step
  } catch (thrown) {
    return thrown;
  }
  return err;
}
