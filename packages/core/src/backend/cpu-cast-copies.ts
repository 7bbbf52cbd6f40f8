import * as tf from '@tensorflow/tfjs';
import { noteTapfitRegistration } from './stock-registrations';

type CpuBackend = { data: { get(id: tf.DataId): { values: ArrayLike<number> } }; makeTensorInfo(shape: number[], dtype: tf.DataType, values: ArrayLike<number>): tf.TensorInfo };

let installed = false;

/**
 * tfjs's cpu Cast from int32 or bool to a wider type (int32 -> float32, bool -> int32 or
 * float32) returns the input's data under the new dtype. When that tensor later moves to
 * another backend, tfjs moves the data as the dtype it was made with, so wasm reads the
 * int32 bits as floats: `tf.oneHot(labels, 3).toFloat()` made on cpu sums to 4e-45 on
 * wasm. Core settles on cpu when it loads (see require-time.ts), so tensors made before
 * selectBackend() are cpu tensors: these casts copy into an array of the new dtype instead.
 */
export function installCpuCastCopies(): void {
  const original = tf.getKernel('Cast', 'cpu');
  if (installed || !original) return;
  installed = true;
  tf.unregisterKernel('Cast', 'cpu');
  const copying: tf.KernelConfig = {
    ...original,
    kernelFunc: (args) => {
      const { x } = args.inputs as { x: tf.TensorInfo };
      const { dtype } = args.attrs as unknown as { dtype: tf.DataType };
      const widening = x.dtype !== dtype && (x.dtype === 'int32' || x.dtype === 'bool') && (dtype === 'float32' || dtype === 'int32');
      if (!widening) return original.kernelFunc(args);
      const backend = args.backend as unknown as CpuBackend;
      const values = backend.data.get(x.dataId).values;
      return backend.makeTensorInfo([...x.shape], dtype, dtype === 'float32' ? Float32Array.from(values) : Int32Array.from(values));
    },
  };
  tf.registerKernel(copying);
  noteTapfitRegistration(copying);
}
