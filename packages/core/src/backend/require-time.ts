import * as tf from '@tensorflow/tfjs';
import { backendInitPending, markCpuBackendUsed } from './engine-internals';

/**
 * Models built at require time (a module that calls tf.sequential() at its top level) run
 * before anyone picks a backend, so tfjs picks the registered backend of highest priority.
 * Once @tensorflow/tfjs-backend-wasm is loaded that is wasm, which initialises
 * asynchronously, and the first synchronous op throws "The highest priority backend 'wasm'
 * has not yet been initialized". So when @tapfit/core loads and no backend has been chosen
 * yet, it settles on cpu (which initialises synchronously), whichever of @tapfit/core,
 * @tensorflow/tfjs and the wasm package was required first. The training backend is then
 * picked with selectBackend() (or tf.setBackend()); tensors built on cpu move with it.
 * tfjs-node sets its own backend when loaded, before or after this.
 */
export function settleRequireTimeBackend(): void {
  if (tf.getBackend() || backendInitPending()) return;
  if (!tf.findBackendFactory('cpu')) return;
  void tf.setBackend('cpu'); // cpu initialises synchronously: the backend is set when this returns
}

/**
 * tfjs's cpu backend prints a banner on its first tensor in Node ("Hi, looks like you are
 * running TensorFlow.js in Node.js..."), into test, CLI and kit output alike. tapfit picks
 * the backend itself (selectBackend says which and why), so loading core initialises cpu
 * (synchronous, as tfjs would on first use; the wasm shim's cpu bridge uses it too) and
 * marks it used.
 */
export function silenceCpuBanner(): void {
  if (!tf.findBackendFactory('cpu')) return;
  tf.findBackend('cpu');
  markCpuBackendUsed();
}
