import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { composite, kernelConfig } from './kernel-calls';
import { Overrides } from './overrides';

/**
 * wasm's OneHot always writes int32 bits, whatever `dtype` says: a float32
 * one-hot comes out as denormals (1 reads as 1.4e-45). Build it as int32 and
 * cast. int32 requests, the tf.oneHot default, go straight to the stock kernel.
 */
export function installOneHotDtype(o: Overrides): void {
  const stock = tf.getKernel('OneHot', 'wasm');
  if (!stock) throw new TapfitError(ErrorCodes.BACKEND, "wasm shim: wasm kernel 'OneHot' is not registered, so its dtype fix cannot be installed. Install @tensorflow/tfjs-backend-wasm 4.22 (the same version as @tensorflow/tfjs).");
  o.kernel(kernelConfig('OneHot', 'wasm', ({ inputs, attrs, backend }) => {
    const asInt = (extra: object) => stock.kernelFunc({ inputs, attrs: { ...attrs, ...extra } as tf.NamedAttrMap, backend }) as tf.TensorInfo;
    if ((attrs.dtype ?? 'int32') === 'int32') return asInt({});
    return composite(backend, 'wasm', (k) => {
      const ints = asInt({ dtype: 'int32' });
      try {
        return k.run('Cast', { x: ints }, { dtype: attrs.dtype });
      } finally {
        backend.disposeData(ints.dataId);
      }
    });
  }));
}
