import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import { Overrides } from '../wasm-shim/overrides';
import { resizeNearestAdjoint } from '../wasm-shim/resize-nearest-grad';

/**
 * tfjs-backend-webgpu 4.22's ResizeNearestNeighborGrad ignores halfPixelCenters
 * (measured: 90 % off on a downscale), like wasm's. Those calls get the exact
 * adjoint computed on the host (dy is read back, the result written); the
 * others keep the stock GPU kernel, which is right.
 */
export function installResizeNearestGradHalfPixel(o: Overrides): void {
  const stock = tf.getKernel('ResizeNearestNeighborGrad', 'webgpu');
  if (!stock) throw new TapfitError(ErrorCodes.BACKEND, "webgpu shim: webgpu kernel 'ResizeNearestNeighborGrad' is not registered, so its fix cannot be installed. Install @tensorflow/tfjs-backend-webgpu 4.22 (the same version as @tensorflow/tfjs).");
  o.kernel(kernelConfig('ResizeNearestNeighborGrad', 'webgpu', ({ inputs, attrs, backend }) => {
    const { alignCorners, halfPixelCenters } = attrs as { alignCorners: boolean; halfPixelCenters: boolean };
    if (!halfPixelCenters) return stock.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend }) as tf.TensorInfo;
    const { images, dy } = inputs;
    const dx = resizeNearestAdjoint(backend.readSync(dy.dataId) as Float32Array, images.shape, dy.shape, alignCorners, halfPixelCenters);
    return { dataId: backend.write(dx, images.shape, 'float32'), shape: images.shape, dtype: 'float32' };
  }));
}
