import type * as tf from '@tensorflow/tfjs';
import { engineTensorInfo, tensorIdWatermark, wrapKeep, wrapRunKernelFunc, wrapTensorTracking } from './engine-internals';

/** A guarded backend, as the rollback needs it. */
export interface RollbackTarget {
  refCount(dataId: tf.DataId): number;
  /** Drop one reference (the backend frees the data at zero). */
  unref(dataId: tf.DataId): void;
}

/**
 * `backend`: a guarded backend took (+1: allocation, incRef) or dropped (-1) a reference to some data.
 * `tensor`: an engine tensor started (+1) or stopped (-1) holding its data.
 * `kept`: a tensor the kernel made was kept (saved for the backward).
 */
type Entry =
  | { kind: 'backend'; target: RollbackTarget; dataId: tf.DataId; delta: 1 | -1 }
  | { kind: 'tensor'; dataId: tf.DataId; delta: 1 | -1 }
  | { kind: 'kept'; tensor: tf.Tensor };

/** What happened inside the kernels now running; `starts` marks where each nested kernel began. */
const journal: Entry[] = [];
const starts: number[] = [];
/** Per running kernel: tensors with a higher id were made inside it. */
const firstIds: number[] = [];
let undoing = false;
let unwrap: (() => void) | null = null;
let users = 0;

/**
 * A kernel that throws half-way (a refused allocation, most often) leaves behind
 * what it had already done on the backend: outputs and intermediates it allocated,
 * references it took on its inputs (reshape and identity share their input's data),
 * and the copies of its inputs it had kept for the backward. Nothing would ever
 * free them. While installed, every kernel run is a transaction: guarded backends
 * note the references they take and drop, the engine notes which tensors hold
 * data and what is kept, and when a kernel throws, every reference it took that
 * no engine tensor holds is dropped, and what it kept is disposed, before the
 * error goes on. (Tensors it made in the caller's scope are the scope's to free.)
 * Install counts its callers; the function it returns undoes one install.
 */
export function installKernelRollback(): () => void {
  if (users++ === 0) {
    const unwrapRun = wrapRunKernelFunc((run) => (params) => {
      starts.push(journal.length);
      firstIds.push(tensorIdWatermark());
      let out: tf.Tensor | tf.Tensor[];
      try {
        out = run(params);
      } catch (err) {
        firstIds.pop();
        rollback(journal.splice(starts.pop()!)); // its entries end here, not in the caller's account
        throw err;
      }
      firstIds.pop();
      starts.pop();
      if (!starts.length) journal.length = 0; // a nested kernel's entries stay: its caller may still fail
      return out;
    });
    const unwrapKeep = wrapKeep((keep) => (tensor) => {
      const kept = keep(tensor);
      // Only tensors the kernel made: keeping a tensor it was given does not make it the kernel's.
      if (starts.length && !undoing && kept.id > firstIds[firstIds.length - 1]) journal.push({ kind: 'kept', tensor: kept });
      return kept;
    });
    const unwrapTracking = wrapTensorTracking({
      track: (track) => (a, backend) => {
        track(a, backend);
        if (starts.length && !undoing) journal.push({ kind: 'tensor', dataId: a.dataId, delta: 1 });
      },
      dispose: (dispose) => (a) => {
        if (starts.length && !undoing && engineTensorInfo(a.dataId)) journal.push({ kind: 'tensor', dataId: a.dataId, delta: -1 });
        dispose(a);
      },
    });
    unwrap = () => {
      unwrapTracking();
      unwrapKeep();
      unwrapRun();
    };
  }
  let released = false;
  return () => {
    if (released) return;
    released = true;
    if (--users === 0) {
      unwrap?.();
      unwrap = null;
    }
  };
}

/** A guarded backend took (+1) or dropped (-1) a reference; outside any kernel there is nothing to undo. */
export function note(target: RollbackTarget, dataId: tf.DataId, delta: 1 | -1): void {
  if (starts.length && !undoing) journal.push({ kind: 'backend', target, dataId, delta });
}

/** Undo what a failed kernel's entries did that no engine tensor holds. */
function rollback(entries: Entry[]): void {
  undoing = true;
  try {
    // What it kept was for the backward of a kernel that will never be taped.
    for (const e of entries) if (e.kind === 'kept' && !e.tensor.isDisposed) e.tensor.dispose();
    // Per data: references the backend gained minus tensors that hold them = references only the kernel held.
    const held = new Map<tf.DataId, { target?: RollbackTarget; n: number }>();
    for (const e of entries) {
      if (e.kind === 'kept') continue;
      const h = held.get(e.dataId) ?? { n: 0 };
      if (e.kind === 'backend') {
        h.target = e.target;
        h.n += e.delta;
      } else h.n -= e.delta;
      held.set(e.dataId, h);
    }
    for (const [dataId, { target, n }] of held) {
      for (let i = 0; i < n && target && target.refCount(dataId) > 0; i++) target.unref(dataId);
    }
  } finally {
    undoing = false;
  }
}
