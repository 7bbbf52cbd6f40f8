import * as tf from '@tensorflow/tfjs';
import type * as WasmPackage from '@tensorflow/tfjs-backend-wasm';
import { ErrorCodes, TapfitError } from '../errors';
import { backendInitGeneration, backendInitialised } from './engine-internals';
import { resolveThreads, WASM_THREADS_ENV, type ThreadChoice } from './thread-count';
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
 * Initialise (or switch to) the wasm backend with the thread count asked for (a number,
 * 'auto', or unset: TAPFIT_WASM_THREADS, else 'auto'; see thread-count.ts). The count is
 * fixed by the first initialisation in a process: afterwards 'auto' keeps it and an
 * explicit other count is an error. Returns the count and how it was decided.
 */
export async function activateWasm(asked?: number | 'auto'): Promise<ThreadChoice> {
  const wasm = loadWasmPackage();
  const choice = resolveThreads(asked);
  const threads = choice.threads;
  if (wasmInitialised()) {
    const actual = wasm.getThreadsCount();
    if (choice.why.startsWith('auto')) {
      if (!(await tf.setBackend('wasm'))) throw initFailed(actual, null);
      return { threads: actual, why: 'fixed by the first wasm initialisation in this process' };
    }
    if (actual !== threads) {
      throw new TapfitError(ErrorCodes.CONFIG, `the wasm backend is already initialised with ${actual} thread(s) in this process; threads: ${threads} (${choice.why}) can only be chosen before the first wasm initialisation. Call selectBackend('wasm', { threads: ${threads} }) before anything else uses wasm, or drop the threads option (and ${WASM_THREADS_ENV}).`);
    }
    if (!(await tf.setBackend('wasm'))) throw initFailed(threads, null);
    return choice;
  }
  let ok: boolean;
  const handlers = processHandlers();
  const generation = backendInitGeneration();
  try {
    ok = threads > 1 ? await initThreadedWasm(threads, wasm) : await tf.setBackend('wasm');
  } catch (cause) {
    throw initFailed(threads, cause);
  } finally {
    restoreProcessHandlers(handlers);
  }
  if (!ok) throw overtaken(generation) ?? initFailed(threads, null);
  if (wasm.getThreadsCount() !== threads) {
    throw new TapfitError(ErrorCodes.BACKEND, `the wasm backend initialised with ${wasm.getThreadsCount()} thread(s) instead of the ${threads} requested; use threads: 1`);
  }
  return choice;
}

/**
 * tfjs drops an asynchronous initialisation that another one (or tf.removeBackend, or
 * an engine reset) overtook, and says nothing: setBackend just resolves to false. That is
 * not a broken install, so the error says what happened instead of blaming versions.
 */
function overtaken(generation: number | undefined): TapfitError | null {
  const now = backendInitGeneration();
  // Our own setBackend('wasm') counted one.
  if (generation === undefined || now === undefined || now <= generation + 1) return null;
  return new TapfitError(
    ErrorCodes.BACKEND,
    "backend 'wasm' did not initialise: another backend change (tf.setBackend, tf.removeBackend or an engine reset) ran while it was initialising, and tfjs drops an initialisation overtaken that way. Await selectBackend() before changing the backend, then call selectBackend() again.",
  );
}

function initFailed(threads: number, cause: unknown): TapfitError {
  const fix = threads > 1
    ? `Multi-threaded wasm relies on tfjs-backend-wasm 4.22 internals; use threads: 1 (or ${WASM_THREADS_ENV}=1).`
    : "Check that @tensorflow/tfjs-backend-wasm has the same version as @tensorflow/tfjs and that its dist/*.wasm files are present, or use selectBackend('cpu').";
  const detail = cause instanceof Error ? `: ${cause.message}` : cause ? `: ${JSON.stringify(cause)}` : ' (tf.setBackend returned false; tfjs logged the reason above)';
  return new TapfitError(ErrorCodes.BACKEND, `backend 'wasm' failed to initialise${threads > 1 ? ` with ${threads} threads` : ''}${detail}. ${fix}`, { cause });
}

type Handlers = Record<'uncaughtException' | 'unhandledRejection', ((...args: unknown[]) => void)[]>;

function processHandlers(): Handlers {
  return { uncaughtException: process.listeners('uncaughtException') as never, unhandledRejection: process.listeners('unhandledRejection') as never };
}

/**
 * The wasm module's emscripten glue adds process handlers that rethrow any uncaught error
 * from its own code: a user's script that failed after training then exited with code 7,
 * its error printed as if thrown in tf-backend-wasm. Those added during initialisation are
 * taken out again, so an uncaught error ends the process as Node's own handling does.
 */
function restoreProcessHandlers(before: Handlers): void {
  const added = (now: unknown[], was: unknown[]) => now.filter((h) => !was.includes(h));
  for (const h of added(process.listeners('uncaughtException'), before.uncaughtException)) process.removeListener('uncaughtException', h as NodeJS.UncaughtExceptionListener);
  for (const h of added(process.listeners('unhandledRejection'), before.unhandledRejection)) process.removeListener('unhandledRejection', h as NodeJS.UnhandledRejectionListener);
}
