import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { composite, kernelConfig, Scratch } from '../wasm-shim/kernel-calls';
import { Overrides } from '../wasm-shim/overrides';

/**
 * tfjs-backend-webgpu 4.22 handles rank 5 and 6 badly in several kernels
 * (docs/backends.md §6):
 * - PadV2 and MirrorPad generate WGSL that does not compile (`cannot index type
 *   'vec5'`): the GPU rejects the program and the output is left as garbage,
 *   with no exception. This breaks the gradient of every slice of a 5-D tensor
 *   (conv3d activations) and the dilated-conv gradient fix (a 6-D pad).
 * - Reverse throws a reshape error; Select (tf.where), Cumsum and Cumprod throw
 *   "not yet supported" (Cumsum and Cumprod: cumulative.ts).
 * Each works along one axis at a time on a rank-3 view [before, axis, after],
 * which the stock kernel handles; higher ranks are composed from such passes.
 * Rank 4 and below go to the stock kernel unchanged.
 */
export const WEBGPU_HIGH_RANK_KERNELS = ['PadV2', 'MirrorPad', 'Reverse', 'Select'] as const;

/** The highest rank the stock kernels handle. */
export const STOCK_MAX_RANK = 4;

export function installHighRankKernels(o: Overrides): void {
  const stock = Object.fromEntries(WEBGPU_HIGH_RANK_KERNELS.map((name) => {
    const kernel = tf.getKernel(name, 'webgpu');
    if (!kernel) throw new TapfitError(ErrorCodes.BACKEND, `webgpu shim: webgpu kernel '${name}' is not registered, so its rank-5/6 fix cannot be installed. Install @tensorflow/tfjs-backend-webgpu 4.22 (the same version as @tensorflow/tfjs).`);
    return [name, kernel];
  })) as Record<(typeof WEBGPU_HIGH_RANK_KERNELS)[number], tf.KernelConfig>;
  const callStock = (name: keyof typeof stock, args: { inputs: Record<string, tf.TensorInfo>; attrs: Record<string, unknown>; backend: tf.KernelBackend }) =>
    stock[name].kernelFunc({ ...args, attrs: args.attrs as tf.NamedAttrMap }) as tf.TensorInfo;

  for (const name of ['PadV2', 'MirrorPad'] as const) {
    o.kernel(kernelConfig(name, 'webgpu', (args) => {
      const { x } = args.inputs;
      const paddings = args.attrs.paddings as Array<[number, number]>;
      if (x.shape.length <= STOCK_MAX_RANK || paddings.every(([a, b]) => a === 0 && b === 0)) return callStock(name, args);
      return composite(args.backend, 'webgpu', (k) => paddings.reduce((t, [before, after], axis) => {
        if (before === 0 && after === 0) return t;
        return alongAxis(k, t, axis, (view) => k.run(name, { x: view }, { ...args.attrs, paddings: [[0, 0], [before, after], [0, 0]] }));
      }, x));
    }));
  }

  o.kernel(kernelConfig('Reverse', 'webgpu', (args) => {
    const { x } = args.inputs;
    const rank = x.shape.length;
    const dims = [...new Set(([] as number[]).concat(args.attrs.dims as number | number[]).map((d) => (d < 0 ? d + rank : d)))];
    if (rank <= STOCK_MAX_RANK || dims.length === 0) return callStock('Reverse', args);
    return composite(args.backend, 'webgpu', (k) => dims.reduce((t, axis) => alongAxis(k, t, axis, (view) => k.run('Reverse', { x: view }, { dims: [1] })), x));
  }));

  o.kernel(kernelConfig('Select', 'webgpu', (args) => {
    const { condition, t, e } = args.inputs;
    // tf.where broadcasts all three to one shape before the kernel; a rank-1 condition selects rows and is left to the stock kernel.
    if (t.shape.length <= STOCK_MAX_RANK || condition.shape.length !== t.shape.length) return callStock('Select', args);
    const flat = [tf.util.sizeFromShape(t.shape)];
    return composite(args.backend, 'webgpu', (k) => k.reshape(
      k.run('Select', { condition: k.reshape(condition, flat), t: k.reshape(t, flat), e: k.reshape(e, flat) }),
      t.shape,
    ));
  }));
}

/** Applies `f` to the rank-3 view [prod(before), shape[axis], prod(after)] of `x` and reshapes the result back. */
export function alongAxis(k: Scratch, x: tf.TensorInfo, axis: number, f: (view: tf.TensorInfo) => tf.TensorInfo): tf.TensorInfo {
  const before = tf.util.sizeFromShape(x.shape.slice(0, axis));
  const after = tf.util.sizeFromShape(x.shape.slice(axis + 1));
  const out = f(k.reshape(x, [before, x.shape[axis], after]));
  return k.reshape(out, [...x.shape.slice(0, axis), out.shape[1], ...x.shape.slice(axis + 1)]);
}
