import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { predictByDelta, predictByVelocity, type Prediction } from './weight-prediction';

/** What a velocity-form prediction reads: the momentum buffer of a variable and the step ahead. */
export interface MotionSource {
  /** v_k of the variable (after k updates); undefined when the chain keeps none. */
  velocity(v: tf.Variable): tf.Tensor | undefined;
  /** Sum of the learning rates of the next `delay` updates (delay * lr for a constant rate). */
  stepAhead(delay: number): number;
}

/**
 * A stage's forward weights by version: entry k is what the forward of the micro-batch
 * that enters D updates after the stage's k-th update uses, i.e. w_k itself, or its
 * Linear Weight Prediction (docs/techniques.md §5.2, §5.4). The forward of micro-batch t
 * reads entry max(0, t - D); entries before that are dropped, so at most D + 1 are held.
 * All tensors are kept (they outlive the step's tidy) and freed by `dispose`.
 */
export class WeightHistory {
  private readonly entries = new Map<number, tf.Tensor[]>();
  /** w_{k-1}, raw: what the weight-delta form extrapolates from. */
  private previous?: tf.Tensor[];

  constructor(
    readonly stage: number,
    readonly delay: number,
    readonly variables: readonly tf.Variable[],
    readonly prediction: Prediction,
  ) {}

  /** Records entry `k` from the variables' current values (w_k). */
  record(k: number, motion?: MotionSource): void {
    if (this.entries.has(k)) return;
    const entry = tf.tidy(() => this.variables.map((v, i) => this.entryFor(v, i, motion)));
    entry.forEach((t) => tf.keep(t));
    this.entries.set(k, entry);
    if (this.prediction === 'lwp-delta') {
      const raw = this.variables.map((v) => tf.keep(tf.clone(v)));
      tf.dispose(this.previous ?? []);
      this.previous = raw;
    }
  }

  private entryFor(v: tf.Variable, i: number, motion?: MotionSource): tf.Tensor {
    switch (this.prediction) {
      case 'none':
        return tf.clone(v);
      case 'lwp-delta':
        return predictByDelta(v, this.previous?.[i] ?? v, this.delay);
      case 'lwp-velocity': {
        const velocity = motion?.velocity(v);
        if (!velocity) {
          throw new TapfitError(ErrorCodes.STATE, `pipeline stage ${this.stage}: prediction 'lwp-velocity' found no momentum velocity for '${v.name}'; use an optimizer with momentum (sgd({ lr, momentum })) or prediction 'lwp-delta'.`);
        }
        return predictByVelocity(v, velocity, motion!.stepAhead(this.delay));
      }
    }
  }

  /** The forward weights of micro-batch `t`: entry max(0, t - D). */
  forwardWeights(t: number): tf.Tensor[] {
    const k = Math.max(0, t - this.delay);
    const entry = this.entries.get(k);
    if (!entry) {
      throw new TapfitError(ErrorCodes.STATE, `pipeline stage ${this.stage}: weight version ${k} (for micro-batch ${t}, delay ${this.delay}) is not held; held: ${[...this.entries.keys()].join(', ') || 'none'}.`);
    }
    return entry;
  }

  has(k: number): boolean {
    return this.entries.has(k);
  }

  /** Drops the entries no forward after micro-batch `t` reads. */
  release(t: number): void {
    const keepFrom = Math.max(0, t + 1 - this.delay);
    for (const [k, entry] of this.entries) {
      if (k < keepFrom) {
        tf.dispose(entry);
        this.entries.delete(k);
      }
    }
  }

  /** Entries and the previous raw weights, for a checkpoint (the caller copies them). */
  snapshot(): { entries: [number, tf.Tensor[]][]; previous?: tf.Tensor[] } {
    return { entries: [...this.entries], previous: this.previous };
  }

  /** Replaces everything with `state` (takes ownership of its tensors, which must be kept). */
  restore(state: { entries: [number, tf.Tensor[]][]; previous?: tf.Tensor[] }): void {
    this.dispose();
    for (const [k, entry] of state.entries) this.entries.set(k, entry);
    this.previous = state.previous;
  }

  /** Bytes the held versions take (entries plus the previous weights). */
  get bytes(): number {
    const size = (ts: readonly tf.Tensor[]) => ts.reduce((s, t) => s + t.size * 4, 0);
    return [...this.entries.values()].reduce((s, e) => s + size(e), 0) + size(this.previous ?? []);
  }

  dispose(): void {
    for (const e of this.entries.values()) tf.dispose(e);
    this.entries.clear();
    tf.dispose(this.previous ?? []);
    this.previous = undefined;
  }
}
