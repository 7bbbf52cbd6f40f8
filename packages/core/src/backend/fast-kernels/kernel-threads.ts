import { ErrorCodes, TapfitError } from '../../errors';

type WorkerThreads = typeof import('node:worker_threads');

/*
 * tapfit's kernels split over the wasm backend's threads.
 *
 * With threads > 1 the backend's heap is a shared WebAssembly.Memory. XNNPACK's kernels
 * use its own thread pool, which tapfit cannot reach; for tapfit's kernels (threads - 1)
 * helper worker_threads (started from source, no file) each instantiate the same kernel
 * module on the same memory. A call is split into parts that
 * write disjoint outputs, each part computing its elements exactly as the whole call
 * would (same order of sums), so the values do not depend on the split. The main thread
 * posts the helpers' parts through a SharedArrayBuffer (kernel, arguments, then a bump of
 * the slot's `go` word with Atomics.notify), does part 0 itself, then Atomics.waits for
 * each helper's `done` word. A helper that has not finished instantiating, or that
 * failed, is not given work: its part goes to the main thread.
 */

/** Per helper, i32 words: go (call number), done (call number finished), kernel id, status. */
const SLOT_WORDS = 4;
const GO = 0;
const DONE = 1;
const KERNEL = 2;
const STATUS = 3;
/** Per helper, float64 arguments (i32 offsets and f32 values are exact in a double). */
const MAX_ARGS = 20;
/** Kernel id that tells a helper to return. */
const STOP = -1;
/** STATUS after the helper is ready (0 while it starts), after a call threw. */
const READY = 1;
const FAILED = 2;

/** How long the main thread waits for a helper's part before giving up on the helpers. */
const HELPER_TIMEOUT_MS = 20_000;

/** What a helper runs: the module on the memory, then calls until told to stop. */
const HELPER_SOURCE = `
const { workerData } = require('node:worker_threads');
const { module, memory, ints, floats, names, slot } = workerData;
const I = new Int32Array(ints);
const F = new Float64Array(floats);
const base = slot * ${SLOT_WORDS};
const args = slot * ${MAX_ARGS};
const exports = new WebAssembly.Instance(module, { env: { memory } }).exports;
const kernels = names.map((n) => exports[n]);
Atomics.store(I, base + ${STATUS}, ${READY});
let seen = 0;
for (;;) {
  Atomics.wait(I, base + ${GO}, seen);
  const go = Atomics.load(I, base + ${GO});
  if (go === seen) continue;
  seen = go;
  const id = I[base + ${KERNEL}];
  if (id === ${STOP}) break;
  try {
    kernels[id](...F.subarray(args, args + ${MAX_ARGS}));
  } catch (err) {
    Atomics.store(I, base + ${STATUS}, ${FAILED});
  }
  Atomics.store(I, base + ${DONE}, seen);
  Atomics.notify(I, base + ${DONE});
}
`;

interface Helper {
  worker: InstanceType<WorkerThreads['Worker']>;
  slot: number;
  alive: boolean;
}

export class KernelThreads {
  private readonly ints: Int32Array;
  private readonly floats: Float64Array;
  private readonly helpers: Helper[];
  private calls = 0;
  private stopped = false;
  /** How long run() waits for a helper's part (tests shorten it). */
  timeoutMs = HELPER_TIMEOUT_MS;

  /** Starts `count` helpers on `memory` (a shared WebAssembly.Memory); `names` are the kernels they may run. */
  constructor(module: object, memory: object, count: number, private readonly names: readonly string[]) {
    this.ints = new Int32Array(new SharedArrayBuffer(count * SLOT_WORDS * 4));
    this.floats = new Float64Array(new SharedArrayBuffer(count * MAX_ARGS * 8));
    this.helpers = [];
    // Looked up here, not at load: tests replace it to check the fallback.
    const { Worker } = require('node:worker_threads') as WorkerThreads;
    try {
      for (let slot = 0; slot < count; slot++) {
        const worker = new Worker(HELPER_SOURCE, { eval: true, workerData: { module, memory, ints: this.ints.buffer, floats: this.floats.buffer, names, slot } });
        const helper: Helper = { worker, slot, alive: true };
        // Helpers never keep the process alive; one that exits or fails gets no more work.
        worker.unref();
        worker.on('error', () => (helper.alive = false));
        worker.on('exit', () => (helper.alive = false));
        this.helpers.push(helper);
      }
    } catch (err) {
      this.stop();
      throw err;
    }
  }

  /** Helpers started (ready or not). */
  get size(): number {
    return this.helpers.length;
  }

  /** Helpers ready for work now. */
  private ready(): Helper[] {
    return this.stopped ? [] : this.helpers.filter((h) => h.alive && Atomics.load(this.ints, h.slot * SLOT_WORDS + STATUS) === READY);
  }

  /** How many parts a call should be split into now: the main thread plus the ready helpers. */
  parts(): number {
    return 1 + this.ready().length;
  }

  /** Helpers started and not stopped (tests check that none is left). */
  get running(): number {
    return this.helpers.filter((h) => h.alive).length;
  }

  /**
   * Runs `main[name]` once per argument list, list 0 on this thread, the others on the
   * helpers; returns when all are done. Lists a helper cannot take run here.
   */
  run(main: Record<string, (...args: number[]) => void>, name: string, argLists: number[][]): void {
    const kernel = this.names.indexOf(name);
    const helpers = this.ready();
    const given: Array<{ helper: Helper; args: number[] }> = [];
    const own: number[][] = [argLists[0]];
    argLists.slice(1).forEach((args, i) => {
      if (kernel >= 0 && i < helpers.length && args.length <= MAX_ARGS) given.push({ helper: helpers[i], args });
      else own.push(args);
    });
    const call = ++this.calls;
    for (const { helper, args } of given) {
      const base = helper.slot * SLOT_WORDS;
      this.floats.fill(0, helper.slot * MAX_ARGS, (helper.slot + 1) * MAX_ARGS);
      this.floats.set(args, helper.slot * MAX_ARGS);
      this.ints[base + KERNEL] = kernel;
      Atomics.store(this.ints, base + GO, call);
      Atomics.notify(this.ints, base + GO);
    }
    for (const args of own) main[name](...args);
    for (const { helper, args } of given) {
      this.await(helper, call, name);
      // A helper whose call threw has written part of its outputs at most: redo its part here.
      if (Atomics.load(this.ints, helper.slot * SLOT_WORDS + STATUS) === FAILED) {
        helper.alive = false;
        main[name](...args);
      }
    }
  }

  private await(helper: Helper, call: number, name: string): void {
    const done = helper.slot * SLOT_WORDS + DONE;
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const seen = Atomics.load(this.ints, done);
      if (seen === call) return;
      const left = deadline - Date.now();
      if (left <= 0) break;
      Atomics.wait(this.ints, done, seen, left);
    }
    this.stop();
    throw new TapfitError(
      ErrorCodes.BACKEND,
      `wasm fast kernels: a kernel helper thread did not finish its part of '${name}' within ${this.timeoutMs / 1000} s (it died, or the machine is overloaded); ` +
        'the helpers are stopped and tapfit\'s kernels now run on the main thread: run the step again, or select wasm with threads: 1 to run without helpers',
    );
  }

  /** Tells the helpers to return and terminates them; later calls run on the main thread. */
  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    for (const helper of this.helpers) {
      const base = helper.slot * SLOT_WORDS;
      this.ints[base + KERNEL] = STOP;
      Atomics.add(this.ints, base + GO, 1);
      Atomics.notify(this.ints, base + GO);
      void helper.worker.terminate();
    }
  }
}

/** [from, to) of part `part` of `parts` over n items, boundaries on multiples of `align`. */
export function partRange(n: number, part: number, parts: number, align = 4): [number, number] {
  const at = (p: number) => (p === parts ? n : Math.floor((n * p) / parts / align) * align);
  return [at(part), at(part + 1)];
}
