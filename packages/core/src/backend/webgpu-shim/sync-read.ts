import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { throwIfGpuRejectedWork } from './gpu-errors';

/*
 * Synchronous reads on tfjs-backend-webgpu in Node (docs/backends.md §6).
 *
 * tfjs-backend-webgpu 4.22 implements `readSync` (dataSync, arraySync) by
 * drawing the buffer onto an OffscreenCanvas, which Node does not have, and
 * tapfit reads small values synchronously in every step (the loss check, plugin
 * statistics). A GPU buffer can only be read after `mapAsync` completes, and
 * Dawn for Node completes it in a callback that it schedules with the global
 * `setImmediate` and that calls the instance's ProcessEvents. While one read
 * runs, `setImmediate` is swapped for a queue that this file drains itself, so
 * the mapping completes without returning to the event loop. This depends on
 * how the `webgpu` package (0.6.x) schedules its events and on tfjs-backend-webgpu
 * 4.22.x internals; `installSyncReads` checks both and fails by name.
 *
 * The backend's async `read` (tensor.data()) goes through the same path: a
 * mapping left pending by an async read would hold Dawn's scheduled callback on
 * the real event loop, where a synchronous read could never run it.
 */

/** WebGPU constants (spec values; Dawn's globals hold the same). */
const MAP_READ = 0x0001;
const BUFFER_MAP_READ = 0x0001;
const BUFFER_COPY_DST = 0x0008;
const BUFFER_QUERY_RESOLVE = 0x0200;
const BUFFER_COPY_SRC = 0x0004;

interface GpuBuffer {
  readonly size: number;
  readonly mapState: 'unmapped' | 'pending' | 'mapped';
  mapAsync(mode: number): Promise<void>;
  getMappedRange(): ArrayBuffer;
  unmap(): void;
}

interface TensorData {
  values: tf.backend_util.BackendValues | null;
  dtype: tf.DataType;
  shape: number[];
  resource?: GpuBuffer | null;
}

/** The parts of tfjs-backend-webgpu 4.22's WebGPUBackend this file uses. */
interface WebgpuBackendInternals {
  tensorMap: { get(dataId: tf.DataId): TensorData | undefined };
  bufferManager: { acquireBuffer(size: number, usage: number): GpuBuffer; releaseBuffer(buffer: GpuBuffer): void };
  commandEncoder: { copyBufferToBuffer(src: GpuBuffer, srcOffset: number, dst: GpuBuffer, dstOffset: number, size: number): void; resolveQuerySet(q: unknown, first: number, count: number, dst: GpuBuffer, offset: number): void };
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  convertAndCacheOnCPU(dataId: tf.DataId, values: tf.backend_util.BackendValues): tf.backend_util.BackendValues;
  readSync(dataId: tf.DataId): tf.backend_util.BackendValues;
  read(dataId: tf.DataId): Promise<tf.backend_util.BackendValues>;
  getQueryTime(): Promise<number>;
  supportTimestampQuery: boolean;
  querySet: unknown;
  queryResolveBuffer: GpuBuffer | null;
  querySetCount: number;
}

const METHODS = ['readSync', 'read', 'getQueryTime', 'ensureCommandEncoderReady', 'endComputePassEncoder', 'submitQueue', 'convertAndCacheOnCPU'] as const;

/** Gives up on a read whose mapping has not completed after this long (the device is presumably lost). */
const READ_TIMEOUT_MS = 10 * 60_000;

/**
 * Replaces `readSync`, `read` and `getQueryTime` of a WebGPUBackend with
 * versions that map the buffer synchronously; returns the undo.
 */
export function installSyncReads(backend: tf.KernelBackend): () => void {
  const b = backend as unknown as WebgpuBackendInternals;
  checkInternals(b);
  const original = { readSync: b.readSync, read: b.read, getQueryTime: b.getQueryTime };
  b.readSync = function readSync(dataId) {
    const data = this.tensorMap.get(dataId);
    // Values already on the host, strings, and complex64 (whose parts come back here) take the stock path.
    if (!data || data.values != null || data.dtype === 'string' || data.dtype === 'complex64') return original.readSync.call(this, dataId);
    const bytes = readBuffer(this, data.resource, 0);
    throwIfGpuRejectedWork();
    return this.convertAndCacheOnCPU(dataId, tf.util.convertBackendValuesAndArrayBuffer(bytes, data.dtype));
  };
  b.read = async function read(dataId) {
    return this.readSync(dataId);
  };
  b.getQueryTime = async function getQueryTime() {
    if (!this.supportTimestampQuery) return 0;
    this.queryResolveBuffer ??= this.bufferManager.acquireBuffer(this.querySetCount * 8, BUFFER_COPY_SRC | BUFFER_COPY_DST | BUFFER_QUERY_RESOLVE);
    this.commandEncoder.resolveQuerySet(this.querySet, 0, this.querySetCount, this.queryResolveBuffer, 0);
    const ticks = new BigUint64Array(readBuffer(this, this.queryResolveBuffer, this.querySetCount * 8));
    return Number(ticks[1] - ticks[0]) / 1e6;
  };
  return () => Object.assign(b, original);
}

/** Copies `size` bytes (0: the whole buffer) of a GPU buffer into host memory, waiting for the GPU. */
function readBuffer(b: WebgpuBackendInternals, source: GpuBuffer | null | undefined, size: number): ArrayBuffer {
  if (!source) return new ArrayBuffer(0); // never written (an empty tensor)
  const bytes = size || source.size;
  const staging = b.bufferManager.acquireBuffer(bytes, BUFFER_COPY_DST | BUFFER_MAP_READ);
  b.ensureCommandEncoderReady();
  b.endComputePassEncoder();
  b.commandEncoder.copyBufferToBuffer(source, 0, staging, 0, bytes);
  b.submitQueue();
  const release = () => {
    staging.unmap();
    b.bufferManager.releaseBuffer(staging);
  };
  mapNow(staging, release);
  try {
    return staging.getMappedRange().slice(0);
  } finally {
    release();
  }
}

/**
 * Maps a buffer for reading without returning to the event loop (see the top of
 * this file). When it throws with the mapping still pending, `releaseLater`
 * runs once the mapping completes on the real event loop.
 */
function mapNow(buffer: GpuBuffer, releaseLater: () => void): void {
  const realSetImmediate = globalThis.setImmediate;
  const queue: Array<() => void> = [];
  const queued = ((f: (...a: unknown[]) => void, ...args: unknown[]) => {
    queue.push(() => f(...args));
    return { ref: () => queued, unref: () => queued, hasRef: () => false, refresh: () => queued, [Symbol.dispose]: () => undefined };
  }) as unknown as typeof setImmediate;
  globalThis.setImmediate = queued;
  const pending = buffer.mapAsync(MAP_READ);
  try {
    const started = Date.now();
    for (let spins = 0; buffer.mapState === 'pending'; spins++) {
      const tick = queue.shift();
      if (!tick) {
        throw new TapfitError(
          ErrorCodes.BACKEND,
          "backend 'webgpu': a synchronous read (dataSync, arraySync, a plugin's statistics) cannot complete while another asynchronous WebGPU operation is pending " +
            '(its completion is queued on the event loop, which a synchronous read cannot reach). Await the other operation first (device creation, a compile, tf.time).',
        );
      }
      tick();
      if (Date.now() - started > READ_TIMEOUT_MS) {
        throw new TapfitError(ErrorCodes.BACKEND, `backend 'webgpu': a read from the GPU did not complete in ${READ_TIMEOUT_MS / 60_000} minutes; the device is probably lost or hung. Restart the process, or use selectBackend('wasm').`);
      }
      // Let the GPU (or, on a software adapter, its worker threads) run instead of spinning hard.
      if (spins > 64) sleep(spins > 4096 ? 1 : 0.05);
    }
  } catch (err) {
    pending.then(releaseLater, () => undefined);
    throw err;
  } finally {
    // Dawn schedules one more tick while it still counts the mapping as pending; run those
    // here too, or the next synchronous read finds Dawn's tick queued on the real event loop.
    for (let extra = 0; extra < 16 && queue.length; extra++) queue.shift()!();
    globalThis.setImmediate = realSetImmediate;
    for (const tick of queue.splice(0)) realSetImmediate(tick);
  }
  pending.catch(() => undefined);
  if (buffer.mapState !== 'mapped') {
    throw new TapfitError(ErrorCodes.BACKEND, "backend 'webgpu': mapping a GPU buffer for reading failed (the device was lost or the buffer destroyed). Restart the process, or use selectBackend('wasm').");
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleep(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

function checkInternals(b: WebgpuBackendInternals): void {
  const missing = [
    ...METHODS.filter((m) => typeof b[m] !== 'function'),
    ...(typeof b.tensorMap?.get !== 'function' ? ['tensorMap.get()'] : []),
    ...(typeof b.bufferManager?.acquireBuffer !== 'function' || typeof b.bufferManager?.releaseBuffer !== 'function' ? ['bufferManager.acquireBuffer/releaseBuffer()'] : []),
  ];
  if (missing.length) {
    throw new TapfitError(
      ErrorCodes.TFJS_INTERNALS,
      `webgpu shim: this tfjs-backend-webgpu lacks internals tapfit reads the GPU through (${missing.join(', ')}); it is written against 4.22.x. Install @tensorflow/tfjs-backend-webgpu@4.22.0 (the same version as @tensorflow/tfjs), or use selectBackend('wasm').`,
    );
  }
}
