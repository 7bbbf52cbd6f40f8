import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { composite, kernelConfig } from '../wasm-shim/kernel-calls';
import { Overrides } from '../wasm-shim/overrides';
import { alongAxis, STOCK_MAX_RANK } from './high-rank';

/**
 * Cumsum and Cumprod on tfjs-backend-webgpu 4.22:
 * - with reverse (which the cumsum gradient uses) they are wrong at any rank: the
 *   shader has the axis length compiled in but is cached without it, so every
 *   length after the first one compiled reuses the wrong one (measured: errors
 *   the size of the values). They run as Reverse, forward op, Reverse.
 * - rank 5 and 6 throw "not yet supported"; they run on the rank-3 view
 *   [before, axis, after] (high-rank.ts).
 */
export const WEBGPU_CUMULATIVE_KERNELS = ['Cumsum', 'Cumprod'] as const;

export function installCumulativeKernels(o: Overrides): void {
  for (const name of WEBGPU_CUMULATIVE_KERNELS) {
    const stock = tf.getKernel(name, 'webgpu');
    if (!stock) throw new TapfitError(ErrorCodes.BACKEND, `webgpu shim: webgpu kernel '${name}' is not registered, so its fix cannot be installed. Install @tensorflow/tfjs-backend-webgpu 4.22 (the same version as @tensorflow/tfjs).`);
    o.kernel(kernelConfig(name, 'webgpu', ({ inputs, attrs, backend }) => {
      const { x } = inputs;
      const { axis, exclusive, reverse } = attrs as { axis: number; exclusive: boolean; reverse: boolean };
      const along = axis < 0 ? axis + x.shape.length : axis;
      if (reverse) {
        return composite(backend, 'webgpu', (k) => {
          const flip = (t: tf.TensorInfo) => k.run('Reverse', { x: t }, { dims: [along] });
          return flip(k.run(name, { x: flip(x) }, { axis: along, exclusive, reverse: false }));
        });
      }
      if (x.shape.length <= STOCK_MAX_RANK) return stock.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend }) as tf.TensorInfo;
      return composite(backend, 'webgpu', (k) => alongAxis(k, x, along, (view) => k.run(name, { x: view }, { axis: 1, exclusive, reverse: false })));
    }));
  }
}
