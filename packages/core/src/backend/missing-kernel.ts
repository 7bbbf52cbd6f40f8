import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { wrapRunKernel } from './engine-internals';
import { TENSORFLOW_MISSING_KERNELS } from './tensorflow';

/** Why some kernels have no wasm implementation even with the shim, keyed by kernel name. */
const knownGaps = new Map<string, string>();

export function explainMissingKernel(kernelName: string, why: string): void {
  knownGaps.set(kernelName, why);
}

const MISSING = /^Kernel '([^']+)' not registered for backend '([^']+)'$/;
let unwrap: (() => void) | null = null;

/**
 * tfjs never falls back to another backend; a kernel a backend lacks throws
 * "Kernel 'X' not registered for backend 'Y'" from `engine.runKernel`, the one
 * place every op and gradient goes through. This wraps that call and rethrows
 * such errors as a TapfitError (code TAPFIT_E_BACKEND) that also says what to
 * do; the tfjs error is kept as `cause`. Other errors pass through unchanged.
 */
export function installMissingKernelErrors(): void {
  if (unwrap) return;
  unwrap = wrapRunKernel((runKernel) => (kernelName, inputs, attrs) => {
    try {
      return runKernel(kernelName, inputs, attrs);
    } catch (err) {
      const m = err instanceof Error ? MISSING.exec(err.message) : null;
      if (!m) throw err;
      throw missingKernelError(m[1], m[2], err);
    }
  });
}

export function uninstallMissingKernelErrors(): void {
  unwrap?.();
  unwrap = null;
}

export function missingKernelError(kernelName: string, backendName: string, cause?: unknown): TapfitError {
  const why = backendName === 'wasm' ? knownGaps.get(kernelName) : undefined;
  // tfjs-node is not loaded unless chosen: its kernel list is known from the package instead.
  const alternatives = ['cpu', 'wasm', 'webgpu', 'tensorflow'].filter((b) => b !== backendName && (b === 'tensorflow' ? !TENSORFLOW_MISSING_KERNELS.includes(kernelName) : tf.getKernel(kernelName, b)));
  const fix = alternatives.length
    ? `Run this op on a backend that has it (${alternatives.map((b) => `'${b}'`).join(', ')}${alternatives.includes('tensorflow') ? '; tensorflow = @tensorflow/tfjs-node[-gpu]' : ''}): ` +
      `selectBackend('${alternatives[0]}') or TAPFIT_BACKEND=${alternatives[0]}, or avoid the op that needs it.`
    : 'Avoid the op that needs it.';
  return new TapfitError(
    ErrorCodes.BACKEND,
    `kernel '${kernelName}' is not available on backend '${backendName}'${why ? ` (${why})` : ''}. ${fix}`,
    { cause },
  );
}
