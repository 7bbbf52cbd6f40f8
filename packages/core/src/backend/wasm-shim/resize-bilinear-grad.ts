import * as tf from '@tensorflow/tfjs';
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
    if (!stock) throw new Error(`tapfit shim: kernel 'ResizeBilinearGrad' not found for backend '${backendName}'`);
    o.kernel(kernelConfig('ResizeBilinearGrad', backendName, ({ inputs, attrs, backend }) => {
      const out = stock.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend }) as tf.TensorInfo;
      return { ...out, shape: inputs.images.shape.slice() };
    }));
  }
}
