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

/**
 * Kernels the cpu backend has and tfjs-node / tfjs-node-gpu 4.22 do not
 * register (read from the published packages' dist/register_all_kernels.js;
 * both register the same 155). None is on a training path of the plugins
 * (the backend matrix test checks that).
 */
export const TENSORFLOW_MISSING_KERNELS: readonly string[] = [
  'BitwiseAnd', 'DenseBincount', 'Draw', 'MaxPoolWithArgmax', 'RaggedGather', 'RaggedRange', 'RaggedTensorToTensor', 'RotateWithOffset',
  'SearchSorted', 'SparseFillEmptyRows', 'SparseReshape', 'SparseSegmentMean', 'SparseSegmentSum', 'StringNGrams', 'StringSplit',
  'StringToHashBucketFast', 'Transform',
];

/** The CUDA libraries libtensorflow 2.9.1 (inside tfjs-node-gpu 4.22) loads. */
const CUDA_LIBRARY = /libcuda|libcudart|libcudnn|libcublas|libcufft|libcurand|libcusolver|libcusparse|cuda/i;

/** Load an installed tfjs-node(-gpu) and make its 'tensorflow' backend current. Any failure is an error, never a fallback. */
export async function activateTensorflow(pkg: TensorflowPackage, resolved: string): Promise<void> {
  const fix = pkg === '@tensorflow/tfjs-node-gpu'
    ? 'it needs a CUDA machine with matching CUDA/cuDNN libraries; on a machine without a GPU uninstall it or choose another backend'
    : 'reinstall it (npm rebuild @tensorflow/tfjs-node) so its native libtensorflow is present, or choose another backend';
  try {
    require(resolved);
  } catch (cause) {
    const message = (cause as Error)?.message ?? String(cause);
    const cuda = pkg === '@tensorflow/tfjs-node-gpu' && CUDA_LIBRARY.test(message)
      ? ' The CUDA libraries are missing: tfjs-node-gpu 4.22 runs libtensorflow 2.9.1, which needs an NVIDIA driver, CUDA 11.2 and cuDNN 8.1 on the library path (LD_LIBRARY_PATH); install them (see the @tapfit/core README, "Getting a GPU").'
      : '';
    throw new TapfitError(ErrorCodes.BACKEND, `backend 'tensorflow' (${pkg}) failed to load: ${message}.${cuda} ${capitalise(fix)} (selectBackend('wasm') or TAPFIT_BACKEND=wasm).`, { cause });
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
