import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError, type NamedTensors } from '@tapfit/core';

/** Throws unless `delay` is a whole number of steps >= 0. */
export function checkDelay(who: string, delay: unknown): number {
  if (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${who}: option 'delay' must be an integer number of steps >= 0 (got ${String(delay)}). Use 0 for no delay.`,
    );
  }
  return delay;
}

/**
 * A FIFO of gradients that makes them `delay` steps stale (docs/techniques.md §4.3): push
 * the gradient computed on the current weights; get back the one pushed `delay` calls
 * earlier, or null while fewer than delay + 1 have been pushed (warm-up: apply nothing).
 *
 * Ownership: push() takes the gradients over (tf.keep, so they outlive the caller's
 * tf.tidy) and returns ones the caller then owns: fresh handles on the queued data, made
 * in the caller's scope, so its tf.tidy frees them whatever a later backward tap returns
 * (a clip or mask, or null). With delay 0 the same tensors come straight back. dispose()
 * frees what is still queued.
 */
export class GradientDelay {
  readonly delay: number;
  private queue: NamedTensors[] = [];

  constructor(delay: number) {
    this.delay = checkDelay('GradientDelay', delay);
  }

  push(grads: NamedTensors): NamedTensors | null {
    if (this.delay === 0) return grads;
    for (const t of Object.values(grads)) tf.keep(t);
    this.queue.push(grads);
    if (this.queue.length <= this.delay) return null;
    const popped = this.queue.shift()!;
    // A clone shares the data: no copy, only a handle the caller's scope tracks.
    return Object.fromEntries(Object.entries(popped).map(([k, t]) => [k, release(t)]));
  }

  /** Gradients waiting, oldest first (at most `delay`). */
  get pending(): readonly NamedTensors[] {
    return this.queue;
  }

  /** Replace the queue (checkpoint restore); takes ownership of `entries`, oldest first. */
  restore(entries: NamedTensors[]): void {
    if (entries.length > this.delay) {
      throw new TapfitError(ErrorCodes.STATE, `GradientDelay: cannot restore ${entries.length} queued gradients with delay ${this.delay} (at most ${this.delay}).`);
    }
    this.dispose();
    entries.forEach((g) => Object.values(g).forEach((t) => tf.keep(t)));
    this.queue = entries;
  }

  dispose(): void {
    for (const g of this.queue) tf.dispose(Object.values(g));
    this.queue = [];
  }
}

/** A handle on `kept`'s data in the current scope, and `kept` itself released. */
function release(kept: tf.Tensor): tf.Tensor {
  const handle = tf.clone(kept);
  kept.dispose();
  return handle;
}
