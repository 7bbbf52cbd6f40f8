import * as tf from '@tensorflow/tfjs';
import { runElementwise } from '../backend/fast-kernels/elementwise';
import { elementsOf, heapFor } from '../backend/fast-kernels/wasm-heap';
import { SCALED_SUM_KERNEL } from '../transforms/fused-update-kernels';
import { scaledSum } from '../transforms/fused-updates';

/**
 * Copies a float32 (or int32) tensor's values into `target`, a view of shared memory of
 * the same length. On wasm straight from the heap, bit for bit: dataSync would first copy
 * them into a fresh array (for the weights of a large model, tens of MB a step, allocated
 * and faulted in every time); elsewhere through dataSync.
 */
export function copyValues(t: tf.Tensor, target: Float32Array): void {
  const heap = tf.getBackend() === 'wasm' && (t.dtype === 'float32' || t.dtype === 'int32') ? heapFor(tf.backend()) : null;
  if (heap) new Int32Array(target.buffer, target.byteOffset, target.length).set(elementsOf(heap, t) as Int32Array);
  else target.set(t.dataSync() as Float32Array);
}

/**
 * A float32 or int32 tensor's values to read on the host: on wasm a view of the heap (valid
 * until the next tensor op may grow it: read it at once), elsewhere dataSync's array.
 */
export function hostValues(t: tf.Tensor): Float32Array | Int32Array {
  const heap = tf.getBackend() === 'wasm' && (t.dtype === 'float32' || t.dtype === 'int32') ? heapFor(tf.backend()) : null;
  if (heap) {
    const words = elementsOf(heap, t) as Int32Array;
    return t.dtype === 'float32' ? new Float32Array(words.buffer, words.byteOffset, words.length) : words;
  }
  return t.dataSync() as Float32Array | Int32Array;
}

/** A new tensor of host values (a view of shared memory): wasm copies them onto its heap; other backends keep the array they are given, so they get a copy. */
export function tensorOfHost(values: Float32Array, shape: number[]): tf.Tensor {
  return tf.tensor(tf.getBackend() === 'wasm' ? values : values.slice(), shape);
}

/**
 * a x + b (host values) as a new tensor, the values of scaledSum(x, a, y, b). On wasm with
 * the fused kernels, the host values are copied onto the heap once, into the tensor that
 * then receives the sum in place (the kernel reads each element before it writes it): one
 * tensor per weight a step, not one for the copy and one for the sum. Never in place on a
 * tensor an op has seen: wasm's convolution and matMul cache their packed weights by
 * tensor id, so a new value must come as a new tensor.
 */
export function scaledSumWithHost(x: tf.Tensor, a: number, values: Float32Array, b: number): tf.Tensor {
  const y = tensorOfHost(values, x.shape);
  const heap = tf.getBackend() === 'wasm' && x.dtype === 'float32' && tf.getKernel(SCALED_SUM_KERNEL, 'wasm') != null ? heapFor(tf.backend()) : null;
  if (!heap) return scaledSum(x, a, y, b);
  const [to, xs] = [heap.offset(y), heap.offset(x)];
  runElementwise(heap, 'axpby', y.size, (from, n) => [to + 4 * from, xs + 4 * from, to + 4 * from, a, b, n]);
  return y;
}
