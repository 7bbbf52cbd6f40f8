import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';

/**
 * Identity, and Cast to the same dtype, share their input's data (one more reference)
 * instead of copying it, as the cpu backend does. Stock wasm copies: every tensor the
 * gradient tape saves goes through Identity (engine.clone), and every saved tensor's
 * gradient through a same-dtype Cast, so a training step copied its weights and
 * activations once more for nothing. Tensors are immutable, so sharing is safe.
 */
export function installSharedIdentity(o: Overrides): void {
  const share = (backend: tf.KernelBackend, x: tf.TensorInfo): tf.TensorInfo => {
    (backend as unknown as { incRef(dataId: tf.DataId): void }).incRef(x.dataId);
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };
  o.kernel(kernelConfig('Identity', 'wasm', ({ inputs, backend }) => share(backend, inputs.x)));
  const stockCast = tf.getKernel('Cast', 'wasm')!;
  o.kernel(kernelConfig('Cast', 'wasm', (args) => {
    const { x } = args.inputs;
    if ((args.attrs as { dtype: tf.DataType }).dtype === x.dtype) return share(args.backend, x);
    return stockCast.kernelFunc({ ...args, attrs: args.attrs as tf.NamedAttrMap }) as tf.TensorInfo;
  }));
}
