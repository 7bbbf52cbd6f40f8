import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { ConsoleLogger } from '../services/defaults';
import type { Logger } from '../services/tokens';
import { assertEngineInternals, initialisedBackend } from './engine-internals';
import { DEFAULT_WASM_BUDGET_BYTES, getMemoryGuard, installMemoryGuard, MemoryGuard } from './memory-guard';
import { installMissingKernelErrors } from './missing-kernel';
import { installTapeOrder } from './tape-order';
import { installTapeRelease } from './tape-release';
import { routeReplacementWarnings } from './wasm-shim/overrides';
import { activateTensorflow, resolvePackage, TENSORFLOW_PACKAGES, TensorflowPackage } from './tensorflow';
import { checkThreadsOption, type ThreadChoice } from './thread-count';
import { activateWasm, wasmPackageInstalled } from './wasm';
import { installWasmMallocCheck } from './wasm-malloc-check';
import { activateHardwareWebgpu, activateWebgpu, formatAdapter, type GpuAdapter } from './webgpu';
import { gradientFixesInstalled, installGradientFixes, installWasmShim, wasmShimInstalled } from './wasm-shim';
import { webgpuShimInstalled } from './webgpu-shim';

export const BACKEND_PREFERENCES = ['auto', 'tensorflow', 'webgpu', 'wasm', 'cpu'] as const;
export type BackendPreference = (typeof BACKEND_PREFERENCES)[number];
export type BackendName = Exclude<BackendPreference, 'auto'>;

/** Environment variable that picks the backend when the code leaves it at 'auto'. */
export const BACKEND_ENV = 'TAPFIT_BACKEND';

export interface SelectBackendOptions {
  /**
   * Byte budget for live tensor data, checked on every allocation (see
   * `installMemoryGuard`). Default: 3 GiB on wasm, none on cpu. Not enforced on
   * 'tensorflow' and 'webgpu' (their own allocators). `Infinity` disables the check.
   */
  memoryBudgetBytes?: number | undefined;
  /**
   * wasm threads: 1-8 or 'auto' (default, unless TAPFIT_WASM_THREADS says otherwise): as
   * many as there are free cores, up to 4, and 1 in a worker thread (see the README).
   */
  threads?: number | 'auto' | undefined;
  /**
   * Where the one-line choice goes: a Logger (its `info`; a warning such as a missing wasm
   * package goes to its `warn`), a function (every line), or false for silence; default a
   * ConsoleLogger.
   */
  log?: Logger | ((line: string) => void) | false | undefined;
  /**
   * How long this call waits for an earlier call still in flight (calls run one at a time)
   * before it fails, naming that call; default 120 000 ms, `Infinity` waits as long as it takes.
   */
  waitForEarlierMs?: number | undefined;
}

/** The default `waitForEarlierMs`: bounded, yet long for a slow initialisation (tfjs-node loading CUDA, a software WebGPU adapter). */
const DEFAULT_WAIT_FOR_EARLIER_MS = 120_000;
/** setTimeout's longest delay (a longer one fires at once): longer waits are as good as Infinity. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export interface BackendSelection {
  /** The tfjs backend now active (`tf.getBackend()`). */
  name: BackendName;
  /** The preference that was resolved, and where it came from. */
  preference: BackendPreference;
  source: 'argument' | typeof BACKEND_ENV | 'default';
  /** One line, e.g. "backend: wasm (tfjs-node-gpu not installed; tfjs-node not installed)". */
  reason: string;
  /** npm package that provides the backend. */
  package: TensorflowPackage | '@tensorflow/tfjs-backend-webgpu' | '@tensorflow/tfjs-backend-wasm' | '@tensorflow/tfjs-backend-cpu';
  /** The WebGPU adapter, on 'webgpu' only. */
  adapter?: GpuAdapter;
  /** Whether a training shim is installed (always for wasm and webgpu: wasm-shim/, webgpu-shim/). */
  shim: boolean;
  /** wasm threads; 1 elsewhere (the backend manages its own). */
  threads: number;
  /** How the thread count was decided ('requested', 'TAPFIT_WASM_THREADS', 'auto: 2 cores, load 0.31', ...); '' off wasm. */
  threadsWhy: string;
  /** The enforced budget, or null when none is enforced. */
  memoryGuard: MemoryGuard | null;
  /** Why this choice trains slowly and how to fix it (logged as a warning), e.g. 'auto' on cpu without the wasm package. */
  warning?: string;
}

/** The last selection, the arguments it was made for and the backend instance it prepared. */
let last: { key: string; selection: BackendSelection; backend: tf.KernelBackend | undefined } | null = null;

/** Settles after the calls made so far: selectBackend calls run one at a time, in call order. */
let inFlight: Promise<unknown> = Promise.resolve();

/** Calls made and not yet settled (a call that gave up counts until its turn would have come). */
let unsettled = 0;
/** The call running now (its selection under way), for the error of a call that gave up waiting for it. */
let running: { call: string; since: number } | null = null;

/**
 * Pick, initialise and prepare a tfjs backend for training.
 *
 * The preference is the argument; when it is omitted or 'auto', the
 * TAPFIT_BACKEND environment variable may name one instead (an explicit
 * non-auto argument always wins). 'auto' tries tfjs-node-gpu, webgpu on a
 * hardware adapter, tfjs-node, wasm, cpu in that order, skipping only packages
 * that are not installed and WebGPU without a hardware adapter: a backend
 * that is installed but fails to initialise is an error, never a silent
 * fallback. wasm always gets the training shim and (by default) a 3 GiB memory
 * guard. Calling again with the same arguments returns the same selection while
 * everything it set up is still in place. Calls made while one is in flight wait for it
 * (two at once would start two initialisations, and tfjs drops one of them), for at most
 * `waitForEarlierMs`; a call that gives up fails naming the call in flight, and never runs.
 */
export async function selectBackend(preference?: BackendPreference, options: SelectBackendOptions = {}): Promise<BackendSelection> {
  const resolved = resolvePreference(preference);
  checkThreadsOption(options.threads);
  if (options.memoryBudgetBytes !== undefined && !(typeof options.memoryBudgetBytes === 'number' && options.memoryBudgetBytes > 0)) {
    throw new TapfitError(ErrorCodes.CONFIG, `selectBackend: memoryBudgetBytes must be a positive number of bytes (Infinity disables the check), got ${String(options.memoryBudgetBytes)}`);
  }
  const waitMs = options.waitForEarlierMs ?? DEFAULT_WAIT_FOR_EARLIER_MS;
  if (!(typeof waitMs === 'number' && waitMs >= 0)) {
    throw new TapfitError(ErrorCodes.CONFIG, `selectBackend: waitForEarlierMs must be a number of milliseconds, 0 or more (Infinity waits as long as it takes), got ${String(waitMs)}`);
  }
  const call = describeCall(resolved);
  const earlier = inFlight;
  const first = unsettled === 0;
  unsettled++;
  let gaveUp = false;
  const run = earlier.then(async () => {
    if (gaveUp) return undefined; // this call was already refused: it must not change the backend now
    running = { call, since: Date.now() };
    try {
      return await select(resolved, options);
    } finally {
      running = null;
    }
  });
  inFlight = run.catch(() => undefined).finally(() => unsettled--);
  // None in flight: the turn comes at once. Otherwise the wait is bounded: an init that never settles (a WebGPU
  // adapter or device request never answered, a backend registered with an init promise that never resolves) would
  // hold every later call forever, without a word.
  if (first || waitMs > MAX_TIMER_MS) return run as Promise<BackendSelection>;
  return new Promise<BackendSelection>((resolve, reject) => {
    const timer = setTimeout(() => {
      gaveUp = true;
      reject(notSettled(call, running ?? { call: 'call', since: Date.now() }, waitMs));
    }, waitMs);
    void earlier.then(() => clearTimeout(timer));
    run.then((selection) => !gaveUp && resolve(selection!), (err: unknown) => !gaveUp && reject(err));
  });
}

/** The call as the user made it, for messages: selectBackend('webgpu'), or selectBackend() with TAPFIT_BACKEND=webgpu. */
function describeCall({ preference, source }: ReturnType<typeof resolvePreference>): string {
  if (source === 'argument') return `selectBackend('${preference}')`;
  return source === BACKEND_ENV ? `selectBackend() with ${BACKEND_ENV}=${preference}` : 'selectBackend()';
}

function notSettled(call: string, stuck: { call: string; since: number }, waitMs: number): TapfitError {
  const seconds = (ms: number) => `${Math.round(ms / 100) / 10} s`;
  return new TapfitError(
    ErrorCodes.BACKEND,
    `${call} waited ${seconds(waitMs)} for an earlier ${stuck.call} that has not settled (started ${seconds(Date.now() - stuck.since)} ago), and gave up: ` +
      'calls run one at a time (two initialisations at once make tfjs drop one). The earlier call waits on its backend\'s initialisation (a WebGPU ' +
      'adapter or device request, or the init of a backend registered with tf.registerBackend). If that is stuck, restart the process and select ' +
      'another backend; if it is only slow, await the earlier call first, or pass a larger waitForEarlierMs (Infinity waits as long as it takes).',
  );
}

async function select(resolved: ReturnType<typeof resolvePreference>, options: SelectBackendOptions): Promise<BackendSelection> {
  const threads = options.threads;
  // String(): JSON.stringify writes Infinity as null, which made 'no check' the key of 'the default budget'.
  const key = JSON.stringify([resolved.preference, threads, String(options.memoryBudgetBytes ?? 'default')]);
  if (last && last.key === key && stillInPlace(last)) return last.selection;

  const log = options.log === false ? null : (options.log ?? new ConsoleLogger());
  const warn = (line: string) => (typeof log === 'function' ? log(line) : log?.warn(line));
  // A kernel or gradient of the program's own that the installs replace is named through the same log.
  const unroute = routeReplacementWarnings(warn);
  let chosen: Chosen;
  try {
    assertEngineInternals();
    installTapeRelease();
    installTapeOrder();
    installMissingKernelErrors();
    installGradientFixes();
    chosen = await activate(resolved.preference, resolved.source, threads);
  } finally {
    unroute();
  }
  const budget = options.memoryBudgetBytes ?? (chosen.name === 'wasm' ? DEFAULT_WASM_BUDGET_BYTES : undefined);
  let memoryGuard: MemoryGuard | null = null;
  const notes: string[] = [];
  if (budget !== undefined && !OWN_ALLOCATOR.has(chosen.name)) {
    memoryGuard = installMemoryGuard(budget, chosen.name);
  } else {
    getMemoryGuard(chosen.name)?.remove();
    if (budget !== undefined) notes.push(`memory budget not enforced on ${chosen.name}`);
  }
  const reason = `backend: ${chosen.name}${chosen.package.startsWith('@tensorflow/tfjs-node') ? ` via ${chosen.package}` : ''} (${[chosen.why, ...notes].join('; ')})`;
  const selection: BackendSelection = {
    name: chosen.name,
    preference: resolved.preference,
    source: resolved.source,
    reason,
    package: chosen.package,
    shim: chosen.name === 'wasm' || chosen.name === 'webgpu',
    threads: chosen.threads?.threads ?? 1,
    threadsWhy: chosen.threads?.why ?? '',
    memoryGuard,
    ...(chosen.adapter ? { adapter: chosen.adapter } : {}),
    ...(chosen.warning ? { warning: chosen.warning } : {}),
  };
  last = { key, selection, backend: initialisedBackend(chosen.name) };
  if (log) {
    if (typeof log === 'function') log(reason);
    else log.info(reason);
    if (selection.warning) warn(selection.warning);
  }
  return selection;
}

/**
 * Whether what a selection set up is all still there: its backend active and the same
 * instance (an engine reset makes a new one, without the guard's hooks), the gradient
 * fixes and its shim installed (uninstallWasmShim(), uninstallGradientFixes() take them
 * out), its memory guard not removed.
 */
function stillInPlace({ selection, backend }: NonNullable<typeof last>): boolean {
  const { name, memoryGuard } = selection;
  return (
    tf.getBackend() === name &&
    initialisedBackend(name) === backend &&
    gradientFixesInstalled() &&
    (name !== 'wasm' || wasmShimInstalled()) &&
    (name !== 'webgpu' || webgpuShimInstalled()) &&
    (memoryGuard === null || getMemoryGuard(name) === memoryGuard)
  );
}

/**
 * The active backend in a few words, for trainer.describe(): 'wasm, 2 threads (auto: 2
 * cores, load 0.31)' when selectBackend chose it, else tfjs's name for it.
 */
export function describeActiveBackend(): string {
  const active = tf.getBackend() ?? 'none';
  const s = last?.selection;
  if (!s || s.name !== active) return active;
  return s.name === 'wasm' ? `wasm, ${s.threads} thread${s.threads > 1 ? 's' : ''} (${s.threadsWhy})` : s.name;
}

function resolvePreference(preference: BackendPreference | undefined): { preference: BackendPreference; source: BackendSelection['source'] } {
  if (preference !== undefined && !isPreference(preference)) {
    throw new TapfitError(ErrorCodes.CONFIG, `selectBackend: unknown backend '${String(preference)}'; valid names: ${BACKEND_PREFERENCES.join(', ')}`);
  }
  if (preference !== undefined && preference !== 'auto') return { preference, source: 'argument' };
  const env = process.env[BACKEND_ENV]?.trim();
  if (env) {
    if (!isPreference(env)) {
      throw new TapfitError(ErrorCodes.CONFIG, `${BACKEND_ENV}='${env}' is not a backend; valid names: ${BACKEND_PREFERENCES.join(', ')} (or unset it)`);
    }
    return { preference: env, source: BACKEND_ENV };
  }
  return { preference: 'auto', source: preference === undefined ? 'default' : 'argument' };
}

function isPreference(x: unknown): x is BackendPreference {
  return (BACKEND_PREFERENCES as readonly unknown[]).includes(x);
}

interface Chosen {
  name: BackendName;
  package: BackendSelection['package'];
  why: string;
  adapter?: GpuAdapter;
  threads?: ThreadChoice;
  warning?: string;
}

/** Backends whose allocations the memory guard cannot see (native TensorFlow, GPU buffers). */
const OWN_ALLOCATOR = new Set<BackendName>(['tensorflow', 'webgpu']);

async function activate(preference: BackendPreference, source: BackendSelection['source'], threads: number | 'auto' | undefined): Promise<Chosen> {
  const asked = source === BACKEND_ENV ? `${BACKEND_ENV}=${preference}` : 'requested';
  switch (preference) {
    case 'cpu':
      await activateCpu();
      return { name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', why: asked };
    case 'wasm': {
      const choice = await activateWasm(threads);
      installWasmShim();
      installWasmMallocCheck(tf.backend());
      return { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', why: `${asked}; ${describeWasm(choice)}`, threads: choice };
    }
    case 'tensorflow': {
      const found = TENSORFLOW_PACKAGES.map((pkg) => ({ pkg, path: resolvePackage(pkg) })).find((p) => p.path);
      if (!found) {
        throw new TapfitError(ErrorCodes.BACKEND, "backend 'tensorflow' needs @tensorflow/tfjs-node-gpu or @tensorflow/tfjs-node, and neither is installed: install @tensorflow/tfjs-node-gpu on a CUDA machine or @tensorflow/tfjs-node (same version as @tensorflow/tfjs), or choose 'wasm'.");
      }
      await activateTensorflow(found.pkg, found.path!);
      return { name: 'tensorflow', package: found.pkg, why: asked };
    }
    case 'webgpu': {
      const adapter = await activateWebgpu();
      return { name: 'webgpu', package: '@tensorflow/tfjs-backend-webgpu', why: `${asked}; adapter ${formatAdapter(adapter)}`, adapter };
    }
    case 'auto': {
      const skipped: string[] = [];
      // A GPU through WebGPU comes right after tfjs-node-gpu: ahead of tfjs-node's CPU kernels.
      for (const pkg of [TENSORFLOW_PACKAGES[0], 'webgpu', TENSORFLOW_PACKAGES[1]] as const) {
        if (pkg === 'webgpu') {
          const gpu = await activateHardwareWebgpu(skipped);
          if (gpu) return { name: 'webgpu', package: '@tensorflow/tfjs-backend-webgpu', why: [...skipped, `adapter ${formatAdapter(gpu)}`].join('; '), adapter: gpu };
          continue;
        }
        const path = resolvePackage(pkg);
        if (!path) {
          skipped.push(`${pkg.replace('@tensorflow/', '')} not installed`);
          continue;
        }
        await activateTensorflow(pkg, path);
        return { name: 'tensorflow', package: pkg, why: skipped.length ? skipped.join('; ') : 'auto' };
      }
      if (wasmPackageInstalled()) {
        const choice = await activateWasm(threads);
        installWasmShim();
        installWasmMallocCheck(tf.backend());
        return { name: 'wasm', package: '@tensorflow/tfjs-backend-wasm', why: [...skipped, describeWasm(choice)].join('; '), threads: choice };
      }
      skipped.push('tfjs-backend-wasm not installed');
      await activateCpu();
      // Training still works on cpu, 45-400x slower: say so loudly, with the one command that fixes it.
      const warning =
        'backend: training on cpu, the plain JavaScript backend (45-400x slower than wasm), because @tensorflow/tfjs-backend-wasm is not installed. ' +
        `Install it next to @tensorflow/tfjs: npm install @tensorflow/tfjs-backend-wasm@${tf.version_core}`;
      return { name: 'cpu', package: '@tensorflow/tfjs-backend-cpu', why: skipped.join('; '), warning };
    }
  }
}

function describeWasm({ threads, why }: ThreadChoice): string {
  return `${threads} thread${threads > 1 ? 's' : ''}${why === 'requested' ? '' : `, ${why}`}`;
}

async function activateCpu(): Promise<void> {
  if (!(await tf.setBackend('cpu'))) {
    throw new TapfitError(ErrorCodes.BACKEND, "backend 'cpu' failed to initialise; it ships with @tensorflow/tfjs: check that @tensorflow/tfjs is installed once (npm ls @tensorflow/tfjs-backend-cpu)");
  }
}
