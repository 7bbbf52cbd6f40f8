import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type * as WasmPackage from '@tensorflow/tfjs-backend-wasm';

// The module object itself (the emscripten bundle reads `cpus` from it), not an import namespace of getters.
const osModule = require('node:os') as { cpus: typeof os.cpus };

/*
 * Multi-threaded wasm in Node (opt-in; see the README for why it is off by default).
 *
 * tfjs-backend-wasm 4.22 hard-codes "no threads" in Node (tfjs#3830): its
 * emscripten pthread workers are started from `blob:` URLs, which Node's Worker
 * cannot load. Three bridges make it work:
 *  1. the two scripts tfjs builds as Blobs (the threaded module factory and the
 *     worker bootstrap) are captured as they are constructed and written to
 *     files, and `URL.createObjectURL` returns those file paths;
 *  2. the worker bootstrap gets a prelude that maps its own createObjectURL to
 *     the module file and defines the bundle-scope names the factory expects;
 *  3. the C++ caps threads at half the logical cores, so `os.cpus()` is padded
 *     during init when more threads are asked for than cores/2.
 * Afterwards the pool workers are unref'd, or the process would never exit.
 * This depends on bundle internals of tfjs-backend-wasm 4.22.x.
 */

interface PThreadPool {
  unusedWorkers: Array<{ unref(): void; ref(): void }>;
  runningWorkers: Array<{ unref(): void; ref(): void }>;
  allocateUnusedWorker(): void;
}

export async function initThreadedWasm(threads: number, wasm: typeof WasmPackage): Promise<boolean> {
  const wasmDir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm'));
  const cacheDir = path.join(os.tmpdir(), `tapfit-wasm-threads-${wasm.version_wasm}`);
  let moduleJs: string | null = null;
  let capturedWorker: string | null = null;
  const RealBlob = globalThis.Blob;
  const realCreateObjectURL = URL.createObjectURL;
  const realCpus = osModule.cpus;

  globalThis.Blob = class CapturingBlob extends RealBlob {
    constructor(...args: ConstructorParameters<typeof Blob>) {
      super(...args);
      const parts = args[0] as unknown[] | undefined;
      const text = parts?.every((p) => typeof p === 'string') ? parts.join('') : null;
      if (text?.startsWith('var WasmBackendModuleThreadedSimd')) {
        const prelude =
          "var require$$0=require('fs'),require$$1=require('path'),require$$3=require('perf_hooks'),require$$4=require('os');" +
          `var commonjsGlobal=globalThis;var __dirname=${JSON.stringify(wasmDir)};\n`;
        moduleJs = writeOnce(cacheDir, 'module', prelude + text);
      }
      if (text?.includes('WasmBackendModuleThreadedSimd(Module)')) capturedWorker = text;
    }
  } as typeof Blob;
  URL.createObjectURL = (obj: Blob) => {
    if (capturedWorker == null || moduleJs == null) return realCreateObjectURL(obj);
    const prelude = `URL.createObjectURL=()=>${JSON.stringify(moduleJs)};URL.revokeObjectURL=()=>{};\n`;
    return writeOnce(cacheDir, 'worker', prelude + capturedWorker);
  };
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
    if (!ok) tf.env().set('WASM_HAS_MULTITHREAD_SUPPORT', flagBefore ?? false);
  }
  if (ok) letProcessExit((tf.findBackend('wasm') as unknown as { wasm: { PThread?: PThreadPool } }).wasm.PThread);
  return ok;
}

/** Pool workers must not keep the event loop alive: every op is synchronous on the main thread anyway. */
function letProcessExit(pool: PThreadPool | undefined): void {
  if (!pool) return;
  const quiet = (w: { unref(): void; ref(): void }) => {
    w.unref();
    w.ref = () => {};
  };
  [...pool.unusedWorkers, ...pool.runningWorkers].forEach(quiet);
  const allocate = pool.allocateUnusedWorker.bind(pool);
  pool.allocateUnusedWorker = () => {
    allocate();
    quiet(pool.unusedWorkers[pool.unusedWorkers.length - 1]);
  };
}

/** Write a generated script under a name derived from its content, atomically (several processes may start at once). */
function writeOnce(dir: string, stem: string, text: string): string {
  const hash = crypto.createHash('sha256').update(text).digest('hex').slice(0, 16);
  const file = path.join(dir, `${stem}-${hash}.js`);
  if (fs.existsSync(file)) return file;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
  return file;
}
