import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';

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
  makeOutput?: OutputMaker;
}

const guards = new Map<string, GuardImpl>();

/**
 * Enforce a byte budget on one backend's tensor allocations. Every allocation
 * goes through the backend's `write` or `move` (wasm kernels allocate their
 * outputs with `makeOutput -> write -> move`; cpu kernels with `write`;
 * moving a tensor between backends calls `move`), so the check runs there,
 * before the memory is taken: an allocation that would exceed the budget throws
 * a TapfitError (code TAPFIT_E_MEMORY) naming the budget and the current use,
 * and nothing is allocated. Frees are counted in `disposeData`.
 * Only tensors allocated after installation are counted; `selectBackend`
 * installs the guard right after initialising the backend.
 * Installing again on the same backend just changes the budget.
 */
export function installMemoryGuard(budgetBytes: number, backendName: string = tf.getBackend()): MemoryGuard {
  checkBudget(budgetBytes);
  const existing = guards.get(backendName);
  if (existing) {
    existing.budgetBytes = budgetBytes;
    return existing;
  }
  const backend = tf.findBackend(backendName) as unknown as HookableBackend | null;
  if (!backend) {
    throw new TapfitError(ErrorCodes.BACKEND, `installMemoryGuard: backend '${backendName}' is not registered or not initialised; call selectBackend() (or await tf.setBackend('${backendName}')) first`);
  }
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

class GuardImpl implements MemoryGuard {
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
    const { write, move, disposeData, makeOutput } = backend;
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
      return dataId;
    };
    backend.move = (dataId, values, shape, dtype, refCount) => {
      // wasm's write calls move: count that allocation once, in write.
      if (this.writing > 0) return move.call(backend, dataId, values, shape, dtype, refCount);
      const bytes = byteSize(shape, dtype, values);
      this.admit(bytes, shape, dtype);
      move.call(backend, dataId, values, shape, dtype, refCount);
      this.record(dataId, bytes);
    };
    backend.disposeData = (dataId, force) => {
      const freed = disposeData.call(backend, dataId, force);
      const bytes = this.sizes.get(dataId);
      if (bytes !== undefined && backend.refCount(dataId) === 0) {
        this.sizes.delete(dataId);
        this.usedBytes -= bytes;
      }
      return freed;
    };
    if (makeOutput) {
      // wasm kernels that allocate in C++ hand over the memory here; it is already
      // taken, so it is counted (towards later checks) rather than refused.
      backend.makeOutput = (shape, dtype, memoryOffset, values) => {
        const info = makeOutput.call(backend, shape, dtype, memoryOffset, values);
        if (memoryOffset != null) this.record(info.dataId, byteSize(shape, dtype, undefined));
        return info;
      };
    }
  }

  get budgetBytes(): number {
    return this.budget;
  }

  set budgetBytes(bytes: number) {
    checkBudget(bytes);
    this.budget = bytes;
  }

  remove(): void {
    const b = this.backend as unknown as Record<string, unknown>;
    for (const name of ['write', 'move', 'disposeData', 'makeOutput']) delete b[name];
    guards.delete(this.backendName);
  }

  private admit(bytes: number, shape: number[], dtype: tf.DataType): void {
    if (this.usedBytes + bytes <= this.budget) return;
    throw new TapfitError(
      ErrorCodes.MEMORY,
      `memory budget exceeded on backend '${this.backendName}': allocating ${formatBytes(bytes)} (${dtype} [${shape.join(',')}]) ` +
        `would bring live tensor memory from ${formatBytes(this.usedBytes)} to ${formatBytes(this.usedBytes + bytes)}, ` +
        `over the budget of ${formatBytes(this.budget)}. Dispose tensors you no longer need (tf.tidy / dispose), use a smaller batch, ` +
        `or change the budget with selectBackend(name, { memoryBudgetBytes })` +
        (this.backendName === 'wasm' ? ' (wasm corrupts data silently above ~3.5 GiB, so do not go past that).' : '.'),
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

export function formatBytes(bytes: number): string {
  if (bytes >= 2 ** 30) return `${(bytes / 2 ** 30).toFixed(2)} GiB`;
  if (bytes >= 2 ** 20) return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (bytes >= 2 ** 10) return `${(bytes / 2 ** 10).toFixed(1)} KiB`;
  return `${bytes} B`;
}
