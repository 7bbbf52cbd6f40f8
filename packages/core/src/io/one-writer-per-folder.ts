import * as path from 'node:path';

/** The write in progress (or last queued) per resolved folder. */
const writing = new Map<string, Promise<unknown>>();

/**
 * Runs `write` once every write queued earlier in this process for the same folder has
 * settled. Crash-safe writers (checkpoints, LoRA adapters) clean up and rename inside their
 * folder on the assumption of one writer: two overlapping saves from one process would
 * remove each other's temporary files or pair one's config with the other's weights.
 */
export function oneWriterPerFolder<T>(folder: string, write: () => Promise<T>): Promise<T> {
  const key = path.resolve(folder);
  const queued = (writing.get(key) ?? Promise.resolve())
    .catch(() => undefined) // the earlier write's failure is its caller's
    .then(write);
  writing.set(key, queued);
  queued
    .finally(() => {
      if (writing.get(key) === queued) writing.delete(key);
    })
    .catch(() => undefined);
  return queued;
}
