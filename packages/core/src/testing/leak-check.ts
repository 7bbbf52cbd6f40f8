import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';

/**
 * Runs `fn` once to warm up (lazy state, caches), then `repeats` more times, and throws
 * if the live tensor count grew. Returns the growth (0 when clean).
 */
export async function checkNoLeaks(fn: () => unknown | Promise<unknown>, options: { repeats?: number | undefined; label?: string | undefined } = {}): Promise<number> {
  await fn();
  const before = tf.memory().numTensors;
  for (let i = 0; i < (options.repeats ?? 1); i++) await fn();
  const growth = tf.memory().numTensors - before;
  if (growth !== 0) {
    throw new TapfitError(
      ErrorCodes.CHECK,
      `${options.label ?? 'leak check'}: ${growth} tensor(s) leaked over ${options.repeats ?? 1} run(s). ` +
        'Wrap the tensor work in tf.tidy, dispose what is returned, and tf.keep only what must outlive a step (and dispose it later).',
    );
  }
  return growth;
}
