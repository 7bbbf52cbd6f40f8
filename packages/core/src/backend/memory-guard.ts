import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { engineTensorInfo, wrapMoveData } from './engine-internals';
import { installKernelRollback, note, type RollbackTarget } from './kernel-rollback';
import { formatBytes, memoryAdvice } from './memory-advice';
import { installTapeRelease } from './tape-release';

export { formatBytes };

/** Default byte budget on wasm: its heap silently corrupts tensors past ~3.5 GiB (docs/backends.md §4). */
export const DEFAULT_WASM_BUDGET_BYTES = 3 * 2 ** 30;

export interface MemoryGuard {
  readonly backendName: string;
  /** Bytes of tensor data allocated on the backend since the guard was installed and still live. */
  readonly usedBytes: number;
  /** Largest `usedBytes` seen. */
  readonly peakBytes: number;
  budgetBytes: number;
  /** Unhook from the backend; the budget stops being enforced. */
  remove(): void;
}

type Writer = (values: unknown, shape: number[], dtype: tf.DataType) => tf.DataId;
type Mover = (dataId: tf.DataId, values: unknown, shape: number[], dtype: tf.DataType, refCount: number) => void;
type Disposer = (dataId: tf.DataId, force?: boolean) => boolean;
type OutputMaker = (shape: number[], dtype: tf.DataType, memoryOffset?: number, values?: unknown) => tf.TensorInfo;

interface HookableBackend {
  write: Writer;
  move: Mover;
  disposeData: Disposer;
  refCount(dataId: tf.DataId): number;
  incRef(dataId: tf.DataId): void;
  makeOutput?: OutputMaker;
}

const guards = new Map<string, GuardImpl>();
/** Hooks on the engine, shared by all guards: held while any guard is installed. */
let engineHooks: (() => void) | null = null;

function hookEngine(): () => void {
  const releaseRollback = installKernelRollback();
  // The engine frees a tensor on its old backend before moving it: refuse before that, or its data is lost.
  const unwrapMove = wrapMoveData((moveData) => (backend, dataId) => {
    const guard = [...guards.values()].find((g) => g.owns(backend));
    const info = guard && engineTensorInfo(dataId);
    if (guard && info) guard.admit(info.bytes, info.shape, info.dtype);
    moveData(backend, dataId);
  });
  return () => {
    unwrapMove();
    releaseRollback();
  };
}

/**
 * Enforce a byte budget on one backend's tensor allocations. Every allocation
 * goes through the backend's `write` or `move` (wasm kernels allocate their
 * outputs with `makeOutput -> write -> move`; cpu kernels with `write`;
 * moving a tensor between backends calls `move`, checked before the engine frees
 * the old copy), so the check runs there, before the memory is taken: an
 * allocation that would exceed the budget throws a TapfitError (code
 * TAPFIT_E_MEMORY) naming the budget and the current use, and nothing is
 * allocated. Frees are counted in `disposeData`.
 * A refusal leaves nothing behind: what the refused kernel had allocated or
 * referenced is undone (kernel-rollback.ts), and a gradient refused half-way frees
 * its tape (tape-release.ts), so after it the count equals the live bytes again.
 * Only tensors allocated after installation are counted; `selectBackend`
 * installs the guard right after initialising the backend.
 * Installing again on the same backend just changes the budget. A backend made anew
 * under the same name (after an engine reset) gets a new guard: the old one's hooks
 * are on an instance nobody uses any more.
 */
export function installMemoryGuard(budgetBytes: number, backendName: string = tf.getBackend()): MemoryGuard {
  checkBudget(budgetBytes);
  const backend = tf.findBackend(backendName) as unknown as HookableBackend | null;
  if (!backend) {
    throw new TapfitError(ErrorCodes.BACKEND, `installMemoryGuard: backend '${backendName}' is not registered or not initialised; call selectBackend() (or await tf.setBackend('${backendName}')) first`);
  }
  const existing = guards.get(backendName);
  if (existing?.owns(backend)) {
    existing.budgetBytes = budgetBytes;
    return existing;
  }
  existing?.remove();
  installTapeRelease();
  engineHooks ??= hookEngine();
  const guard = new GuardImpl(backendName, backend, budgetBytes);
  guards.set(backendName, guard);
  return guard;
}

export function getMemoryGuard(backendName: string = tf.getBackend()): MemoryGuard | undefined {
  return guards.get(backendName);
}

function checkBudget(budgetBytes: number): void {
  if (!(typeof budgetBytes === 'number' && budgetBytes > 0)) {
    throw new TapfitError(ErrorCodes.CONFIG, `memoryBudgetBytes must be a positive number of bytes (or Infinity to disable the check), got ${String(budgetBytes)}`);
  }
}

class GuardImpl implements MemoryGuard, RollbackTarget {
  usedBytes = 0;
  peakBytes = 0;
  private budget: number;
  private readonly sizes = new WeakMap<tf.DataId, number>();
  private writing = 0;

  constructor(
    readonly backendName: string,
    private readonly backend: HookableBackend,
    budgetBytes: number,
  ) {
    this.budget = budgetBytes;
    const { write, move, disposeData, incRef, makeOutput } = backend;
    // Instance properties shadow the prototype methods; `remove` deletes them again.
    backend.write = (values, shape, dtype) => {
      const bytes = byteSize(shape, dtype, values);
      this.admit(bytes, shape, dtype);
      this.writing++;
      let dataId: tf.DataId;
      try {
        dataId = write.call(backend, values, shape, dtype);
      } finally {
        this.writing--;
      }
      this.record(dataId, bytes);
      note(this, dataId, 1);
      return dataId;
    };
    backend.move = (dataId, values, shape, dtype, refCount) => {
      // wasm's write calls move: count that allocation once, in write. A tensor
      // moved from another backend was admitted before the engine freed its old copy.
      move.call(backend, dataId, values, shape, dtype, refCount);
      if (this.writing === 0) this.record(dataId, byteSize(shape, dtype, values));
    };
    backend.disposeData = (dataId, force) => {
      const freed = disposeData.call(backend, dataId, force);
      const bytes = this.sizes.get(dataId);
      if (bytes !== undefined && backend.refCount(dataId) === 0) {
        this.sizes.delete(dataId);
        this.usedBytes -= bytes;
      }
      if (!force) note(this, dataId, -1); // a forced free (a move away, a copy's end) leaves no reference to undo
      return freed;
    };
    backend.incRef = (dataId) => {
      incRef.call(backend, dataId);
      note(this, dataId, 1);
    };
    if (makeOutput) {
      // wasm kernels that allocate in C++ hand over the memory here; it is already
      // taken, so it is counted (towards later checks) rather than refused.
      backend.makeOutput = (shape, dtype, memoryOffset, values) => {
        const info = makeOutput.call(backend, shape, dtype, memoryOffset, values);
        if (memoryOffset != null) {
          this.record(info.dataId, byteSize(shape, dtype, undefined));
          note(this, info.dataId, 1);
        }
        return info;
      };
    }
  }

  owns(backend: unknown): boolean {
    return backend === this.backend;
  }

  refCount(dataId: tf.DataId): number {
    return this.backend.refCount(dataId);
  }

  unref(dataId: tf.DataId): void {
    this.backend.disposeData(dataId);
  }

  get budgetBytes(): number {
    return this.budget;
  }

  set budgetBytes(bytes: number) {
    checkBudget(bytes);
    this.budget = bytes;
  }

  remove(): void {
    if (guards.get(this.backendName) !== this) return; // removed already, or replaced on a new instance of the backend
    const b = this.backend as unknown as Record<string, unknown>;
    for (const name of ['write', 'move', 'disposeData', 'incRef', 'makeOutput']) delete b[name];
    guards.delete(this.backendName);
    if (!guards.size) {
      engineHooks?.();
      engineHooks = null;
    }
  }

  admit(bytes: number, shape: number[], dtype: tf.DataType): void {
    if (this.usedBytes + bytes <= this.budget) return;
    throw new TapfitError(
      ErrorCodes.MEMORY,
      `memory budget exceeded on backend '${this.backendName}': allocating ${formatBytes(bytes)} (${dtype} [${shape.join(',')}]) ` +
        `would bring live tensor memory from ${formatBytes(this.usedBytes)} to ${formatBytes(this.usedBytes + bytes)}, ` +
        `over the budget of ${formatBytes(this.budget)}. ${memoryAdvice({ backendName: this.backendName, bytes, limitBytes: this.budget })} ` +
        `The budget can be changed with selectBackend(name, { memoryBudgetBytes })` +
        (this.backendName === 'wasm' ? ' (up to ~3.5 GiB on wasm, whose heap ends at 4 GiB).' : '.'),
    );
  }

  private record(dataId: tf.DataId, bytes: number): void {
    const previous = this.sizes.get(dataId);
    if (previous !== undefined) this.usedBytes -= previous;
    this.sizes.set(dataId, bytes);
    this.usedBytes += bytes;
    if (this.usedBytes > this.peakBytes) this.peakBytes = this.usedBytes;
  }
}

function byteSize(shape: number[], dtype: tf.DataType, values: unknown): number {
  const size = shape.reduce((a, b) => a * b, 1);
  if (dtype === 'string') {
    return Array.isArray(values) ? values.reduce((n: number, v: { length?: number }) => n + (v?.length ?? 0), 0) : 0;
  }
  // A complex64 tensor only points at its real and imaginary float32 parts, counted on their own.
  return dtype === 'complex64' ? 0 : size * tf.util.bytesPerElement(dtype);
}
