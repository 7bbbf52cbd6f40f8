import * as tf from '@tensorflow/tfjs';
import { isUserGradient, isUserKernel, noteTapfitRegistration } from '../stock-registrations';

/** One registry entry: a kernel of one backend, or a gradient. */
interface Slot<C extends object> {
  get(): C | undefined;
  set(config: C): void;
  clear(): void;
  /** For the warning: "kernel 'Transpose' for backend 'wasm'". */
  what: string;
  /** Whether a registered config is the program's own (not tfjs's, not tapfit's). */
  isUsers(config: C): boolean;
}

/** For each registration tapfit made, what it replaced: undoing one in the middle of a chain relinks the one above it. */
const replaced = new WeakMap<object, { previous: object | undefined }>();

/** Registrations of the program's own that tapfit replaced and has warned about (once each). */
const warned = new Set<string>();
let warn: (line: string) => void = (line) => console.warn(line);

/** Sends the warnings about replaced user registrations to `to` until the returned function is called (selectBackend: its logger). */
export function routeReplacementWarnings(to: (line: string) => void): () => void {
  const before = warn;
  warn = to;
  return () => {
    warn = before;
  };
}

/**
 * Registers kernels and gradients while remembering what they replaced, so the
 * whole set can be taken back out (benchmarks compare stock and shimmed wasm in
 * one process; tests check the stock failures the shim exists for).
 *
 * tapfit's registrations take precedence over those the program made before: replacing
 * one of the program's own (not tfjs's stock one) logs a warning, once per kernel or
 * gradient. A registration made over tapfit's afterwards stays when tapfit's is undone.
 */
export class Overrides {
  private readonly undo: Array<() => void> = [];

  kernel(config: tf.KernelConfig): void {
    const { kernelName, backendName } = config;
    const previous = tf.getKernel(kernelName, backendName);
    // Keep the replaced kernel's setup: wasm kernels bind their C++ entry point in
    // setupFunc when the backend initialises, and a replacement may delegate to it.
    this.register<tf.KernelConfig>(
      {
        get: () => tf.getKernel(kernelName, backendName),
        set: (c) => {
          // Unregister first: re-registering an existing kernel prints a warning.
          if (tf.getKernel(kernelName, backendName)) tf.unregisterKernel(kernelName, backendName);
          tf.registerKernel(c);
        },
        clear: () => tf.unregisterKernel(kernelName, backendName),
        what: `kernel '${kernelName}' for backend '${backendName}'`,
        isUsers: isUserKernel,
      },
      { setupFunc: previous?.setupFunc, disposeFunc: previous?.disposeFunc, ...config },
    );
  }

  gradient(config: tf.GradConfig): void {
    const { kernelName } = config;
    this.register<tf.GradConfig>(
      {
        get: () => tf.getGradient(kernelName),
        set: (c) => tf.registerGradient(c),
        clear: () => tf.unregisterGradient(kernelName),
        what: `gradient of '${kernelName}'`,
        isUsers: isUserGradient,
      },
      { ...config },
    );
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

  private register<C extends object>(slot: Slot<C>, config: C): void {
    const previous = slot.get();
    if (previous && slot.isUsers(previous) && !warned.has(slot.what)) {
      warned.add(slot.what);
      warn(
        `tapfit replaced your registration of the ${slot.what} with its own: tapfit's kernels and gradients take precedence over ` +
          'those registered before selectBackend() (or installWasmShim()). To use yours, register it after that call; tapfit keeps it then.',
      );
    }
    slot.set(config);
    noteTapfitRegistration(config);
    const link = { previous: previous as object | undefined };
    replaced.set(config, link);
    this.undo.push(() => {
      const top = slot.get();
      if (top === config) {
        if (link.previous) slot.set(link.previous as C);
        else slot.clear();
        return;
      }
      // Registered over since. By tapfit (another group, undone out of order): relink the one
      // above past this one. By the program: its registration stays.
      for (let c: object | undefined = top; c && replaced.has(c); c = replaced.get(c)!.previous) {
        const above = replaced.get(c)!;
        if (above.previous === config) {
          above.previous = link.previous;
          return;
        }
      }
    });
  }
}
