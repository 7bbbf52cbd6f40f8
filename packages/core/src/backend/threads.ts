import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type * as WasmPackage from '@tensorflow/tfjs-backend-wasm';
import { ErrorCodes, TapfitError } from '../errors';

// The module object itself (the emscripten bundle reads `cpus` from it), not an import namespace of getters.
const osModule = require('node:os') as { cpus: typeof os.cpus };
const { Worker: NodeWorker } = require('node:worker_threads') as typeof import('node:worker_threads');

/*
 * Multi-threaded wasm in Node.
 *
 * tfjs-backend-wasm 4.22 hard-codes "no threads" in Node (tfjs#3830): its emscripten
 * pthread workers are started from `blob:` URLs, which Node's Worker cannot load. While
 * the backend initialises, three bridges make it work, without writing any file:
 *  1. the two scripts tfjs builds as Blobs (the threaded module factory and the worker
 *     bootstrap) are captured as they are constructed;
 *  2. the bundle's global `Worker` (it installs Node's) starts each pthread worker from
 *     source (`eval: true`): the bootstrap, then a few lines that hand it the module
 *     factory from memory instead of a `blob:` URL;
 *  3. the C++ caps threads at half the logical cores, so `os.cpus()` is padded during
 *     init when more threads are asked for than cores/2.
 * Each pool worker lowers its own priority (POOL_NICE). Afterwards the pool workers are
 * unref'd, or the process would never exit, and a worker the pool adds later is started
 * the same way. Works in the main thread and in worker_threads. This depends on bundle
 * internals of tfjs-backend-wasm 4.22.x.
 */

interface PoolWorker {
  unref(): void;
  ref(): void;
}

interface PThreadPool {
  unusedWorkers: PoolWorker[];
  runningWorkers: PoolWorker[];
  allocateUnusedWorker(): void;
}

/**
 * Nice value of the pool workers (Linux; elsewhere they keep the process's). XNNPACK's
 * pool workers spin for milliseconds after each of its operations; tapfit's helper
 * threads (fast-kernels/kernel-threads.ts) run on the same cores right after, and at
 * equal priority got half a core while a spinner held it. At nice 10 a spinner gets about
 * 10% of a core a helper also wants (the scheduler's weights) and all of an idle one;
 * measured effect in docs/backends.md §3.
 */
const POOL_NICE = 10;

/** The URLs tfjs's scripts get in place of `blob:` URLs (never loaded as files). */
const WORKER_URL = 'tapfit:wasm-pthread-worker';
const MODULE_URL = 'tapfit:wasm-threaded-module';

/** Whether an initialisation has the process globals patched: a second one would save those patches as the originals. */
let patching = false;

export async function initThreadedWasm(threads: number, wasm: typeof WasmPackage): Promise<boolean> {
  // selectBackend runs one call at a time, so this holds; checked because a broken order would leave os.cpus, Blob and Worker patched for good.
  if (patching) throw new TapfitError(ErrorCodes.BACKEND, 'multi-threaded wasm is already initialising in this process; await the selectBackend() call in flight instead of starting another');
  patching = true;
  try {
    return await initPatched(threads, wasm);
  } finally {
    patching = false;
  }
}

async function initPatched(threads: number, wasm: typeof WasmPackage): Promise<boolean> {
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  const captured = { module: null as string | null, worker: null as string | null };
  const workerBlobs = new WeakSet<object>();
  const RealBlob = globalThis.Blob;
  const realCreateObjectURL = URL.createObjectURL;
  const realCpus = osModule.cpus;
  const globals = globalThis as unknown as { Worker?: unknown };
  const workerProperty = Object.getOwnPropertyDescriptor(globals, 'Worker');

  globalThis.Blob = class CapturingBlob extends RealBlob {
    constructor(...args: ConstructorParameters<typeof Blob>) {
      super(...args);
      const parts = args[0] as unknown[] | undefined;
      const text = parts?.every((p) => typeof p === 'string') ? parts.join('') : null;
      if (text?.startsWith('var WasmBackendModuleThreadedSimd')) captured.module = text;
      if (text?.includes('WasmBackendModuleThreadedSimd(Module)')) {
        captured.worker = text;
        workerBlobs.add(this);
      }
    }
  } as typeof Blob;
  URL.createObjectURL = (obj: Blob) => (workerBlobs.has(obj) ? WORKER_URL : realCreateObjectURL(obj));
  // The bundle assigns Node's Worker to the global and constructs pthread workers from it.
  // Its assignment is dropped: after init the pool starts workers through `spawn` (letProcessExit),
  // and a global Worker would tell other code in the process that it runs in a browser.
  const spawn = () => startPoolWorker(pthreadWorkerSource(captured, wasmDir));
  Object.defineProperty(globals, 'Worker', {
    configurable: true,
    get: () =>
      function PThreadWorker(url: string, options?: object) {
        return url === WORKER_URL ? spawn() : new NodeWorker(url, options);
      },
    set: () => {},
  });
  const cores = realCpus();
  if (cores.length < 2 * threads) osModule.cpus = () => Array.from({ length: 2 * threads }, (_, i) => cores[i % cores.length]);

  const flagBefore = tf.env().getFlags()['WASM_HAS_MULTITHREAD_SUPPORT'];
  tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', true);
  wasm.setThreadsCount(threads);
  let ok = false;
  try {
    ok = await tf.setBackend('wasm');
  } finally {
    globalThis.Blob = RealBlob;
    URL.createObjectURL = realCreateObjectURL;
    osModule.cpus = realCpus;
    if (workerProperty) Object.defineProperty(globals, 'Worker', workerProperty);
    else delete globals.Worker;
    if (!ok) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', flagBefore ?? false);
  }
  if (ok) letProcessExit((tf.findBackend('wasm') as unknown as { wasm: { PThread?: PThreadPool } }).wasm.PThread, spawn);
  return ok;
}

/**
 * A pthread worker's source: emscripten's bootstrap, then the module factory served
 * from memory (its Blob is posted to the worker, which would read it from a `blob:` URL).
 */
function pthreadWorkerSource(captured: { module: string | null; worker: string | null }, wasmDir: string): string {
  if (captured.worker == null || captured.module == null) {
    throw new TapfitError(ErrorCodes.BACKEND, 'tfjs-backend-wasm did not build its pthread scripts as tapfit expects (it supports 4.22.x); use threads: 1');
  }
  // Names the factory expects from the bundle's scope.
  const moduleScope =
    "var require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks'),require$$4=require('os');" +
    `var commonjsGlobal=globalThis;var __dirname=${JSON.stringify(wasmDir)};\n`;
  return [
    `var tapfitThreadedModule=${JSON.stringify(moduleScope + captured.module)};`,
    captured.worker,
    `;globalThis.importScripts=function(f){(0,eval)(f===${JSON.stringify(MODULE_URL)}?tapfitThreadedModule:require('fs').readFileSync(f,'utf8'))};`,
    `URL.createObjectURL=function(){return ${JSON.stringify(MODULE_URL)}};URL.revokeObjectURL=function(){};`,
    // Linux: setpriority on the thread's own id lowers this thread alone (never raises it).
    `try{const os=require('os'),t=+require('fs').readlinkSync('/proc/thread-self').split('/').pop();os.setPriority(t,Math.max(os.getPriority(t),${POOL_NICE}))}catch(e){}`,
  ].join('\n');
}

function startPoolWorker(source: string): PoolWorker {
  return new NodeWorker(source, { eval: true });
}

/** Pool workers must not keep the event loop alive: every op is synchronous on the main thread anyway. */
function letProcessExit(pool: PThreadPool | undefined, spawn: () => PoolWorker): void {
  if (!pool) return;
  const quiet = (w: PoolWorker) => {
    w.unref();
    w.ref = () => {};
    return w;
  };
  [...pool.unusedWorkers, ...pool.runningWorkers].forEach(quiet);
  pool.allocateUnusedWorker = () => {
    pool.unusedWorkers.push(quiet(spawn()));
  };
}
