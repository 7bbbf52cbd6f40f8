import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { backendRegistered } from './engine-internals';

/**
 * The native TensorFlow backends, both optional peers (their install downloads
 * libtensorflow from outside the npm registry), in the order `auto` tries them.
 * Both register a tfjs backend named 'tensorflow'.
 */
export const TENSORFLOW_PACKAGES = ['@tensorflow/tfjs-node-gpu', '@tensorflow/tfjs-node'] as const;
export type TensorflowPackage = (typeof TENSORFLOW_PACKAGES)[number];

/** Where a package resolves from: this module's node_modules chain first, then the working directory's. */
export function resolvePackage(name: string): string | null {
  for (const paths of [undefined, [process.cwd()]]) {
    try {
      return require.resolve(name, paths ? { paths } : undefined);
    } catch {
      // not installed along this path
    }
  }
  return null;
}

/** Load an installed tfjs-node(-gpu) and make its 'tensorflow' backend current. Any failure is an error, never a fallback. */
export async function activateTensorflow(pkg: TensorflowPackage, resolved: string): Promise<void> {
  const fix = pkg === '@tensorflow/tfjs-node-gpu'
    ? 'it needs a CUDA machine with matching CUDA/cuDNN libraries; on a machine without a GPU uninstall it or choose another backend'
    : 'reinstall it (npm rebuild @tensorflow/tfjs-node) so its native libtensorflow is present, or choose another backend';
  try {
    require(resolved);
  } catch (cause) {
    throw new TapfitError(ErrorCodes.BACKEND, `backend 'tensorflow' (${pkg}) failed to load: ${(cause as Error)?.message ?? String(cause)}. ${capitalise(fix)} (selectBackend('wasm') or TAPFIT_BACKEND=wasm).`, { cause });
  }
  if (!backendRegistered('tensorflow')) {
    throw new TapfitError(ErrorCodes.BACKEND, `${pkg} loaded but registered no 'tensorflow' backend with this copy of @tensorflow/tfjs; two copies are installed. Make their versions match so npm dedupes them (npm ls @tensorflow/tfjs-core).`);
  }
  let ok = false;
  let cause: unknown;
  try {
    ok = await tf.setBackend('tensorflow');
  } catch (err) {
    cause = err;
  }
  if (!ok) {
    throw new TapfitError(ErrorCodes.BACKEND, `backend 'tensorflow' (${pkg}) failed to initialise${cause instanceof Error ? `: ${cause.message}` : ''}; ${fix}.`, { cause });
  }
}

function capitalise(s: string): string {
  return s[0].toUpperCase() + s.slice(1);
}
