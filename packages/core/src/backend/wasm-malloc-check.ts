import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { formatBytes, memoryAdvice } from './memory-advice';
import { getMemoryGuard } from './memory-guard';

/** The parts of tfjs-backend-wasm's emscripten module the check uses (not exported API). */
interface EmscriptenHeap {
  _malloc(bytes: number): number;
  _free(at: number): void;
  HEAPU8?: Uint8Array;
}

const checked = new WeakSet<object>();

/** wasm32's address space, which tfjs-backend-wasm's heap may grow to. */
const MAX_HEAP_BYTES = 4 * 2 ** 30;

/**
 * Makes the wasm backend's allocator throw TAPFIT_E_MEMORY when it finds no free block.
 * emscripten's malloc returns 0 then, and tfjs-backend-wasm's `move` does not look: it
 * records the tensor at heap offset 0 and copies its values there, over live tensors and
 * the allocator's own bookkeeping, and a later kernel aborts the module for the rest of
 * the process. The memory guard cannot prevent it: it counts live bytes, while the heap
 * (at most 4 GiB, never shrunk, never compacted) can be split into free blocks that are
 * each too small. The throw comes before `move` records or writes anything, so the
 * kernel rollback undoes the rest of a refused kernel as for the guard's own refusals.
 * Once per module; tapfit's fast kernels allocate through the same function.
 */
export function installWasmMallocCheck(backend: tf.KernelBackend): void {
  const wasm = (backend as unknown as { wasm?: EmscriptenHeap }).wasm;
  if (!wasm || typeof wasm._malloc !== 'function' || typeof wasm._free !== 'function' || checked.has(wasm)) return;
  // emscripten's `Module._malloc` starts as a stub that puts the raw export in its own
  // place on its first call (over any wrapper set before): make that call first.
  wasm._free(wasm._malloc(16));
  const malloc = wasm._malloc;
  wasm._malloc = (bytes: number) => {
    const at = malloc(bytes);
    if (at === 0 && bytes > 0) throw heapFull(backend, wasm, bytes);
    return at;
  };
  checked.add(wasm);
}

function heapFull(backend: tf.KernelBackend, wasm: EmscriptenHeap, bytes: number): TapfitError {
  const guard = getMemoryGuard('wasm');
  const guarded = guard && tf.findBackend('wasm') === backend ? guard : undefined;
  const live = guarded ? guarded.usedBytes : tf.memory().numBytes;
  const heap = wasm.HEAPU8?.length ?? 0;
  return new TapfitError(
    ErrorCodes.MEMORY,
    `the wasm heap has no free block of ${formatBytes(bytes)}: ${formatBytes(live)} of tensors are live in a heap of ${formatBytes(heap)} ` +
      `(at most 4 GiB; it never shrinks, and what is freed stays split between the live tensors). Nothing was allocated. ` +
      `${memoryAdvice({ backendName: 'wasm', bytes, limitBytes: Math.min(guarded?.budgetBytes ?? Infinity, MAX_HEAP_BYTES) })} ` +
      `Large blocks fit best when they are allocated first (data before the model and its training state).`,
  );
}
