import * as tf from '@tensorflow/tfjs';
import { gradientRegistry, registeredBackendNames, watchBackendRegistrations } from './engine-internals';

/*
 * tfjs's own kernel and gradient registrations, to tell a user's apart when tapfit
 * replaces one (wasm-shim/overrides.ts warns then). Recorded as this module loads (with
 * @tapfit/core, after @tensorflow/tfjs): every gradient, and the kernels of every backend
 * registered by then. A backend package loaded later (tfjs-backend-wasm, which core loads on
 * first use, or one the program requires) is recorded as it registers its backend: wasm
 * registers its kernels first, so they are all there; webgpu registers them after, so it is
 * recorded once the package has finished loading (a microtask later).
 */

const stockKernels = new Map<string, tf.KernelConfig>();
const recordedBackends = new Set<string>();
const stockGradients = new Map<string, tf.GradConfig>();
/** Registrations tapfit made, on any backend. */
const tapfits = new WeakSet<object>();

function recordKernels(backendName: string): void {
  recordedBackends.add(backendName);
  for (const k of tf.getKernelsForBackend(backendName)) stockKernels.set(`${k.kernelName}/${backendName}`, k);
}

function recordAtLoad(): void {
  for (const [name, g] of gradientRegistry() ?? []) stockGradients.set(name, g);
  for (const name of registeredBackendNames()) recordKernels(name);
  watchBackendRegistrations((name) => {
    if (recordedBackends.has(name)) return;
    if (tf.getKernelsForBackend(name).length) recordKernels(name);
    else queueMicrotask(() => recordKernels(name));
  });
}
recordAtLoad();

/** Marks a kernel or gradient config as tapfit's own. */
export function noteTapfitRegistration(config: object): void {
  tapfits.add(config);
}

/**
 * Whether a registered kernel is the program's own: neither tfjs's (as recorded) nor
 * tapfit's. False when tapfit cannot tell (its backend package was never recorded).
 */
export function isUserKernel(config: tf.KernelConfig): boolean {
  const { kernelName, backendName } = config;
  return recordedBackends.has(backendName) && !tapfits.has(config) && stockKernels.get(`${kernelName}/${backendName}`) !== config;
}

/** Whether a registered gradient is the program's own (see isUserKernel). */
export function isUserGradient(config: tf.GradConfig): boolean {
  return stockGradients.size > 0 && !tapfits.has(config) && stockGradients.get(config.kernelName) !== config;
}
