import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { kernelConfig } from './kernel-calls';
import { Overrides } from './overrides';

/**
 * ResizeBilinearGrad in tfjs 4.22 (cpu and wasm) computes the right values in
 * the images' [B,H,W,C] layout but labels the result [B,W,H,C], so any
 * non-square image fails with "The gradient of input 'images' has shape ...".
 * The wrapper runs the stock kernel and gives its output the images' shape
 * (same size, same layout: only the label changes).
 */
export function installResizeBilinearGradShape(o: Overrides, backendNames: readonly string[]): void {
  for (const backendName of backendNames) {
    const stock = tf.getKernel('ResizeBilinearGrad', backendName);
    if (!stock) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel 'ResizeBilinearGrad' is not registered for backend '${backendName}', so its fix cannot be installed. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22 (the same version), and import '@tensorflow/tfjs' (the union package).`);
    o.kernel(kernelConfig('ResizeBilinearGrad', backendName, ({ inputs, attrs, backend }) => {
      const out = stock.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend }) as tf.TensorInfo;
      return { ...out, shape: inputs.images.shape.slice() };
    }));
  }
}
