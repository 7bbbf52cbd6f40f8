import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError, tieHostState } from '@tapfit/core';

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
    // Core's measurements (memoryBudget's profiling) put M, V, u, v back after their training
    // forwards and backwards; the counters (the NaN-check cadence, checkpoints) go back with them.
    tieHostState(mean, () => {
      const { trainingCalls, backwardCalls, step } = this;
      const unread = this.unread.length;
      return () => {
        Object.assign(this, { trainingCalls, backwardCalls, step });
        // The checks of the measured commits checked values that are gone.
        if (this.unread.length > unread) disposeChecks(this.unread.splice(unread));
        if (this.unread.length === 0) unreadStates.delete(this);
      };
    });
  }

  get channels(): number {
    return this.mean.shape[0];
  }

  /**
   * Replace M, V (or u, v) together. With `check`, non-finite new values (NaN/Inf) are an
   * error naming the unit and the call, and the statistics end up as they were before it:
   * - `finite` given (the host recurrences' verdict on the float32 arrays they uploaded,
   *   exactly these values): the error is thrown here, before anything is assigned, and
   *   nothing is read back.
   * - `finite` not given (the device recurrences): the check stays on the device. The
   *   values are assigned, and the check's result is kept with the previous values (held,
   *   not copied) until `readFiniteChecks` reads it: the plugin once per step for all its
   *   layers, `onlineNormalize` at the state's next training or inference call (with the
   *   checks of the states committed in the same pass, `checkedTogetherWith`). A failed
   *   check puts the previous values back and throws there.
   */
  commit(values: { mean: tf.Tensor; variance: tf.Tensor } | { u: tf.Tensor; v: tf.Tensor }, check: boolean, finite?: boolean): void {
    const entries = Object.entries(values) as [StatName, tf.Tensor][];
    const forward = 'mean' in values;
    const call = forward ? this.trainingCalls + 1 : this.backwardCalls + 1;
    if (check && finite === false) throw this.nonFiniteError(forward, call, this.step);
    if (check && finite === undefined) {
      unreadStates.add(this);
      tf.tidy(() => {
        this.unread.push({
          finite: tf.keep(tf.isFinite(tf.concat(entries.map(([, t]) => t)))),
          // A clone shares the variable's data, which the assignment below leaves to it.
          before: entries.map(([name]) => [name, tf.keep(tf.clone(this[name]))]),
          forward,
          call,
          step: this.step,
          order: nextCheck++,
          pass: currentPass(),
        });
      });
    }
    for (const [name, value] of entries) this[name].assign(value);
  }

  /** Device-side checks not read yet (`readFiniteChecks`). */
  get unreadChecks(): number {
    return this.unread.length;
  }

  /** The passes (`currentPass`) that committed its unread checks. */
  get unreadPasses(): Set<object> {
    return new Set(this.unread.map((check) => check.pass));
  }

  /** Whether one of its unread checks was committed in one of `passes`. */
  checkedIn(passes: ReadonlySet<object>): boolean {
    return this.unread.some((check) => passes.has(check.pass));
  }

  /** Hands the unread checks over (to `readFiniteChecks`, which disposes them). */
  takeUnreadChecks(): UnreadCheck[] {
    unreadStates.delete(this);
    return this.unread.splice(0);
  }

  /** Drops the unread checks unread (disposal, reset, a resume from a checkpoint). */
  discardUnreadChecks(): void {
    disposeChecks(this.takeUnreadChecks());
  }

  /** The error for non-finite statistics at `call` (forward: a training call; else a backward pass). */
  nonFiniteError(forward: boolean, call: number, step: number | undefined): TapfitError {
    return new TapfitError(
      ErrorCodes.NON_FINITE,
      `OnlineNorm '${this.label}': non-finite ${forward ? 'running mean/variance (forward)' : 'control accumulators u/v (backward)'} at ` +
        `${forward ? `training call ${call}` : `backward pass ${call}`}${step === undefined ? '' : ` (trainer step ${step})`}; the ${forward ? 'input' : 'incoming gradient'} holds NaN/Inf ` +
        `(diverging training: lower the learning rate or check the data). The statistics were left unchanged.`,
    );
  }

  private unread: UnreadCheck[] = [];

  /** Reset to the initial state: M = 0, V = 1, u = v = 0 (unread device-side checks are dropped). */
  reset(): void {
    tf.tidy(() => {
      this.mean.assign(tf.zeros([this.channels]));
      this.variance.assign(tf.ones([this.channels]));
      this.u.assign(tf.zeros([this.channels]));
      this.v.assign(tf.zeros([this.channels]));
    });
    this.trainingCalls = 0;
    this.backwardCalls = 0;
    this.discardUnreadChecks();
  }
}

export type StatName = 'mean' | 'variance' | 'u' | 'v';

/** One device-side check of a commit, not read yet. */
export interface UnreadCheck {
  /** Bool vector: which of the new values were finite (kept until read). */
  finite: tf.Tensor;
  /** The variables' values before the commit, to put back if it failed (kept until read). */
  before: [StatName, tf.Tensor][];
  forward: boolean;
  /** The training call (forward) or backward pass (backward) it checked, 1-based. */
  call: number;
  step?: number;
  /** Creation order across all states: the first failure is the one reported. */
  order: number;
  /** The pass that committed it (`currentPass`). */
  pass: object;
}

let nextCheck = 0;
/** The states that hold unread checks. */
const unreadStates = new Set<OnlineNormState>();

let pass: object | undefined;

/**
 * The synchronous stretch of code running now, until it yields: one training step of
 * model.fit (tfjs runs a batch's forward and backward without yielding), one forward of
 * a tapfit trainer. The checks one pass commits are one model's (or one computation's):
 * models and trainers in one process take turns only where they yield (awaits between
 * batches), so another model's checks are never of the same pass.
 */
function currentPass(): object {
  if (!pass) {
    const now = (pass = {});
    queueMicrotask(() => {
      if (pass === now) pass = undefined;
    });
  }
  return pass;
}

/**
 * `state` and every state with an unread check committed in a pass that committed one of
 * `state`'s: the layers of the model whose step or forward it was, whose checks its next
 * call reads in one read-back. Never another model's or trainer's: their checks stay
 * unread until their own next call (or their plugin's read), which reports their failure.
 */
export function checkedTogetherWith(state: OnlineNormState): OnlineNormState[] {
  const passes = state.unreadPasses;
  return [...unreadStates].filter((s) => s.checkedIn(passes));
}

function disposeChecks(checks: UnreadCheck[]): void {
  tf.dispose(checks.flatMap((c) => [c.finite, ...c.before.map(([, t]) => t)]));
}

/**
 * Read the unread device-side NaN/Inf checks (recurrences 'device') of `states`, or of
 * every state of the process that has some (the default: every model's and trainer's),
 * in one read-back of one boolean (a second, only after a
 * failure, finds which). If one failed, put every failed state's statistics back as they
 * were before its first failed commit (of that kind: M, V or u, v) and throw
 * `TAPFIT_E_NON_FINITE` for the earliest failure, naming its layer, call and trainer
 * step. Nothing unread: nothing is read back.
 */
export function readFiniteChecks(states: Iterable<OnlineNormState> = unreadStates): void {
  const checks = [...states].flatMap((state) => state.takeUnreadChecks().map((check) => ({ state, check })));
  if (checks.length === 0) return;
  const finite = checks.length === 1 ? checks[0].check.finite : tf.concat(checks.map((c) => c.check.finite));
  try {
    const all = tf.all(finite);
    const ok = all.dataSync()[0];
    all.dispose();
    if (ok) return;
    const flags = finite.dataSync();
    const failed: typeof checks = [];
    let at = 0;
    for (const c of checks) {
      const end = at + c.check.finite.size;
      for (let i = at; i < end; i++) {
        if (!flags[i]) {
          failed.push(c);
          break;
        }
      }
      at = end;
    }
    failed.sort((a, b) => a.check.order - b.check.order);
    const restored = new Map<OnlineNormState, Set<boolean>>();
    for (const { state, check } of failed) {
      const kinds = restored.get(state) ?? new Set<boolean>();
      if (kinds.has(check.forward)) continue; // an earlier failure of the same kind put back older values
      restored.set(state, kinds.add(check.forward));
      for (const [name, value] of check.before) state[name].assign(value);
    }
    const first = failed[0].check;
    throw failed[0].state.nonFiniteError(first.forward, first.call, first.step);
  } finally {
    if (checks.length > 1) finite.dispose();
    disposeChecks(checks.map((c) => c.check));
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
  state.discardUnreadChecks();
  for (const variable of [state.mean, state.variance, state.u, state.v]) variable.dispose();
}
