import * as tf from '@tensorflow/tfjs';
import type * as WasmPackage from '@tensorflow/tfjs-backend-wasm';
import { ErrorCodes, TapfitError } from '../errors';
import { backendInitialised } from './engine-internals';
import { initThreadedWasm } from './threads';

/**
 * `@tensorflow/tfjs-backend-wasm` is loaded on first use only: requiring it
 * registers 'wasm' as the highest-priority backend, whose init is async, and a
 * process that never asked for wasm must not have its default backend changed
 * by importing @tapfit/core.
 */
export function loadWasmPackage(): typeof WasmPackage {
  try {
    return require('@tensorflow/tfjs-backend-wasm') as typeof WasmPackage;
  } catch (cause) {
    throw new TapfitError(ErrorCodes.BACKEND, "backend 'wasm' needs @tensorflow/tfjs-backend-wasm: npm install @tensorflow/tfjs-backend-wasm@4.22 (same version as @tensorflow/tfjs)", { cause });
  }
}

export function wasmPackageInstalled(): boolean {
  try {
    require.resolve('@tensorflow/tfjs-backend-wasm');
    return true;
  } catch {
    return false;
  }
}

/** Whether the wasm backend has been initialised in this process (it can be only once). */
export function wasmInitialised(): boolean {
  return backendInitialised('wasm');
}

/**
 * Initialise (or switch to) the wasm backend with `threads` threads. The thread
 * count is fixed by the first initialisation in a process.
 */
export async function activateWasm(threads: number): Promise<void> {
  const wasm = loadWasmPackage();
  if (wasmInitialised()) {
    const actual = wasm.getThreadsCount();
    if (actual !== threads) {
      throw new TapfitError(ErrorCodes.CONFIG, `the wasm backend is already initialised with ${actual} thread(s) in this process; threads: ${threads} can only be chosen before the first wasm initialisation. Call selectBackend('wasm', { threads: ${threads} }) before anything else uses wasm, or drop the threads option.`);
    }
    if (!(await tf.setBackend('wasm'))) throw initFailed(threads, null);
    return;
  }
  let ok: boolean;
  try {
    ok = threads > 1 ? await initThreadedWasm(threads, wasm) : await tf.setBackend('wasm');
  } catch (cause) {
    throw initFailed(threads, cause);
  }
  if (!ok) throw initFailed(threads, null);
  if (wasm.getThreadsCount() !== threads) {
    throw new TapfitError(ErrorCodes.BACKEND, `the wasm backend initialised with ${wasm.getThreadsCount()} thread(s) instead of the ${threads} requested; use threads: 1 (the default)`);
  }
}

function initFailed(threads: number, cause: unknown): TapfitError {
  const fix = threads > 1
    ? 'Multi-threaded wasm relies on tfjs-backend-wasm 4.22 internals; use threads: 1 (the default).'
    : "Check that @tensorflow/tfjs-backend-wasm has the same version as @tensorflow/tfjs and that its dist/*.wasm files are present, or use selectBackend('cpu').";
  const detail = cause instanceof Error ? `: ${cause.message}` : cause ? `: ${JSON.stringify(cause)}` : ' (tf.setBackend returned false; tfjs logged the reason above)';
  return new TapfitError(ErrorCodes.BACKEND, `backend 'wasm' failed to initialise${threads > 1 ? ` with ${threads} threads` : ''}${detail}. ${fix}`, { cause });
}
