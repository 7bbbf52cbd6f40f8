import * as os from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { ErrorCodes, TapfitError } from '../errors';

/** Environment variable that sets the wasm thread count when the code does not (1-8 or 'auto'). */
export const WASM_THREADS_ENV = 'TAPFIT_WASM_THREADS';

/** The most threads 'auto' picks: XNNPACK's products scale little further at training sizes. */
const AUTO_MAX_THREADS = 4;

export interface ThreadChoice {
  threads: number;
  /** How it was decided, for the selection's reason and trainer.describe(). */
  why: string;
}

export interface MachineLoad {
  cores: number;
  /** One-minute load average (0 where the OS has none, e.g. Windows). */
  load: number;
  inWorker: boolean;
}

export function currentMachineLoad(): MachineLoad {
  return { cores: os.availableParallelism(), load: os.loadavg()[0], inWorker: !isMainThread };
}

/**
 * 'auto': as many threads as there are free cores (cores minus the one-minute load
 * average, rounded), from 1 to 4. Threads pay only on cores nothing else uses: a wasm
 * worker thread that has to wait for a busy core stalls every product it takes part in
 * (measured: 2 threads on 2 busy cores trained slower than 1). In a worker thread
 * (asyncTrain's workers, the pipeline's stages) 'auto' is 1: the workers are the
 * parallelism there.
 */
export function autoThreads(m: MachineLoad): ThreadChoice {
  if (m.inWorker) return { threads: 1, why: 'auto: 1 in a worker thread' };
  const free = Math.max(0, m.cores - m.load);
  const threads = Math.max(1, Math.min(AUTO_MAX_THREADS, m.cores, Math.round(free)));
  return { threads, why: `auto: ${m.cores} core${m.cores > 1 ? 's' : ''}, load ${m.load.toFixed(2)}` };
}

/** The thread count asked for (a number, 'auto', or unset: TAPFIT_WASM_THREADS, else 'auto'), checked. */
export function resolveThreads(asked: number | 'auto' | undefined, machine: () => MachineLoad = currentMachineLoad): ThreadChoice {
  if (asked !== undefined) return asked === 'auto' ? autoThreads(machine()) : { threads: checkThreads(asked, 'selectBackend: threads'), why: 'requested' };
  const env = process.env[WASM_THREADS_ENV]?.trim();
  if (!env || env === 'auto') return autoThreads(machine());
  return { threads: checkThreads(Number(env), `${WASM_THREADS_ENV}='${env}'`), why: WASM_THREADS_ENV };
}

/** Refuse a bad `threads` option before anything is initialised. */
export function checkThreadsOption(threads: unknown): void {
  if (threads !== undefined && threads !== 'auto') checkThreads(threads, 'selectBackend: threads');
}

function checkThreads(threads: unknown, who: string): number {
  if (typeof threads === 'number' && Number.isInteger(threads) && threads >= 1 && threads <= 8) return threads;
  throw new TapfitError(ErrorCodes.CONFIG, `${who}: threads must be an integer from 1 to 8 (tfjs-backend-wasm's limit) or 'auto', got ${String(threads)}`);
}
