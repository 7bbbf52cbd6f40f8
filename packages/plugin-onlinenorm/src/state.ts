import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';

/**
 * The per-channel state of one Online Normalization unit, all non-trainable and
 * changed only by assignment: running mean `M` and variance `V` (forward,
 * docs/techniques.md §6.2) and the control accumulators `u` (mean direction) and `v`
 * (output direction) of the backward (§6.3). It persists across batches and across calls
 * (a recurrent cell shares one).
 */
export class OnlineNormState {
  /** Training forwards that updated M, V (1-based in messages). */
  trainingCalls = 0;
  /** The trainer's step of the current call, when a tapfit trainer passes it (for errors). */
  step?: number;
  /** Backward passes that updated u, v. */
  backwardCalls = 0;

  constructor(
    /** Names the unit in error messages (the layer name). */
    readonly label: string,
    readonly mean: tf.Variable,
    readonly variance: tf.Variable,
    readonly u: tf.Variable,
    readonly v: tf.Variable,
  ) {
    const channels = mean.shape[0];
    for (const [name, variable] of Object.entries({ mean, variance, u, v })) {
      if (variable.rank !== 1 || variable.shape[0] !== channels || variable.dtype !== 'float32') {
        throw new TapfitError(ErrorCodes.SHAPE, `OnlineNorm '${label}': state '${name}' must be a float32 vector of ${channels} channels (got ${variable.dtype} [${variable.shape}])`);
      }
    }
  }

  get channels(): number {
    return this.mean.shape[0];
  }

  /**
   * Replace M, V (or u, v) together, or not at all: if `check` is set and any new value is
   * NaN/Inf the variables keep their old values and the error names the unit and the call.
   * `finite` is the caller's verdict on exactly these values when it has one (the host
   * recurrences check the float32 arrays they upload, so nothing is read back); without
   * it the values are read back to check them.
   */
  commit(values: { mean: tf.Tensor; variance: tf.Tensor } | { u: tf.Tensor; v: tf.Tensor }, check: boolean, finite?: boolean): void {
    const entries = Object.entries(values) as [keyof OnlineNormState & ('mean' | 'variance' | 'u' | 'v'), tf.Tensor][];
    if (check && !(finite ?? entries.every(([, t]) => t.dataSync().every(Number.isFinite)))) {
      const forward = 'mean' in values;
      throw new TapfitError(
        ErrorCodes.NON_FINITE,
        `OnlineNorm '${this.label}': non-finite ${forward ? 'running mean/variance (forward)' : 'control accumulators u/v (backward)'} at ` +
          `${forward ? `training call ${this.trainingCalls + 1}` : `backward pass ${this.backwardCalls + 1}`}${this.step === undefined ? '' : ` (trainer step ${this.step})`}; the ${forward ? 'input' : 'incoming gradient'} holds NaN/Inf ` +
          `(diverging training: lower the learning rate or check the data). The statistics were left unchanged.`,
      );
    }
    for (const [name, value] of entries) this[name].assign(value);
  }

  /** Reset to the initial state: M = 0, V = 1, u = v = 0. */
  reset(): void {
    tf.tidy(() => {
      this.mean.assign(tf.zeros([this.channels]));
      this.variance.assign(tf.ones([this.channels]));
      this.u.assign(tf.zeros([this.channels]));
      this.v.assign(tf.zeros([this.channels]));
    });
    this.trainingCalls = 0;
    this.backwardCalls = 0;
  }
}

/** A fresh state (M = 0, V = 1, u = v = 0) held in its own non-trainable variables. */
export function createOnlineNormState(channels: number, label = 'online_norm'): OnlineNormState {
  if (!Number.isInteger(channels) || channels < 1) {
    throw new TapfitError(ErrorCodes.CONFIG, `OnlineNorm '${label}': channels must be a whole number >= 1 (got ${channels})`);
  }
  const make = (name: string, init: tf.Tensor) => {
    const variable = tf.variable(init, false, `${label}/${name}_${nextId++}`);
    init.dispose();
    return variable;
  };
  return new OnlineNormState(
    label,
    make('mean', tf.zeros([channels])),
    make('variance', tf.ones([channels])),
    make('u', tf.zeros([channels])),
    make('v', tf.zeros([channels])),
  );
}

let nextId = 0;

/** Dispose the variables of a state made by `createOnlineNormState`. */
export function disposeOnlineNormState(state: OnlineNormState): void {
  for (const variable of [state.mean, state.variance, state.u, state.v]) variable.dispose();
}
