import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';

/*
 * WebGPU reports a program the GPU rejects (WGSL that does not compile, an
 * invalid binding) as an "uncaptured error" event and leaves the output buffer
 * as it was: the kernel returns garbage and nothing throws (tfjs-backend-webgpu
 * 4.22's rank-5 pads did this before the shim replaced them, see high-rank.ts).
 * This records the message so that the next read from the GPU throws instead of
 * handing out wrong values, and takes the event (preventDefault) so that Dawn
 * does not also print it: the error carries it.
 */

interface UncapturedErrorEvent {
  error?: { message?: string };
  preventDefault?: () => void;
}

interface ErrorEventTarget {
  addEventListener(type: 'uncapturederror', listener: (event: UncapturedErrorEvent) => void): void;
  removeEventListener(type: 'uncapturederror', listener: (event: UncapturedErrorEvent) => void): void;
}

const rejected: string[] = [];

/** Starts recording the device's uncaptured errors; returns the undo. */
export function watchGpuErrors(backend: tf.KernelBackend): () => void {
  const device = (backend as unknown as { device?: ErrorEventTarget }).device;
  if (typeof device?.addEventListener !== 'function') {
    throw new TapfitError(ErrorCodes.TFJS_INTERNALS, "webgpu shim: this tfjs-backend-webgpu has no `device` with addEventListener; it is written against 4.22.x. Install @tensorflow/tfjs-backend-webgpu@4.22.0 (the same version as @tensorflow/tfjs), or use selectBackend('wasm').");
  }
  const listener = (event: UncapturedErrorEvent) => {
    rejected.push(event.error?.message ?? 'unknown GPU error');
    event.preventDefault?.();
  };
  device.addEventListener('uncapturederror', listener);
  return () => {
    device.removeEventListener('uncapturederror', listener);
    rejected.length = 0;
  };
}

/** Throws (once) if the GPU rejected work since the last check: the values computed since are wrong. */
export function throwIfGpuRejectedWork(): void {
  if (!rejected.length) return;
  const first = rejected[0].split('\n').filter(Boolean).slice(0, 3).join(' / ');
  const program = /ShaderModuleDescriptor "+([A-Za-z0-9_]+)/.exec(rejected.join('\n'))?.[1];
  const count = rejected.length;
  rejected.length = 0;
  throw new TapfitError(
    ErrorCodes.BACKEND,
    `backend 'webgpu': the GPU rejected ${count} piece(s) of work${program ? ` (program ${program})` : ''}: ${first}. ` +
      'The values computed since are wrong. This is a tfjs-backend-webgpu bug for this op or shape: run the model on another backend ' +
      "(selectBackend('wasm') or TAPFIT_BACKEND=wasm), and report the op and shapes.",
  );
}
