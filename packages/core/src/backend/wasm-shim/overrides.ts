import * as tf from '@tensorflow/tfjs';

/**
 * Registers kernels and gradients while remembering what they replaced, so the
 * whole set can be taken back out (benchmarks compare stock and shimmed wasm in
 * one process; tests check the stock failures the shim exists for).
 */
export class Overrides {
  private readonly undo: Array<() => void> = [];

  kernel(config: tf.KernelConfig): void {
    const { kernelName, backendName } = config;
    const previous = tf.getKernel(kernelName, backendName);
    // Unregister first: re-registering an existing kernel prints a warning.
    if (previous) tf.unregisterKernel(kernelName, backendName);
    // Keep the replaced kernel's setup: wasm kernels bind their C++ entry point in
    // setupFunc when the backend initialises, and a replacement may delegate to it.
    tf.registerKernel({ setupFunc: previous?.setupFunc, disposeFunc: previous?.disposeFunc, ...config });
    this.undo.push(() => {
      tf.unregisterKernel(kernelName, backendName);
      if (previous) tf.registerKernel(previous);
    });
  }

  gradient(config: tf.GradConfig): void {
    const previous = tf.getGradient(config.kernelName);
    tf.registerGradient(config);
    this.undo.push(() => {
      if (previous) tf.registerGradient(previous);
      else tf.unregisterGradient(config.kernelName);
    });
  }

  /** Sets `owner[key]` (an op of tfjs's namespace objects) until `restore`. */
  replace<T extends object, K extends keyof T>(owner: T, key: K, value: T[K]): void {
    const previous = owner[key];
    owner[key] = value;
    this.undo.push(() => {
      owner[key] = previous;
    });
  }

  /** Undo every registration, newest first. */
  restore(): void {
    while (this.undo.length) this.undo.pop()!();
  }
}
