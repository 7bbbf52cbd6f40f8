import * as tf from '@tensorflow/tfjs';
import { elementsOf, heapFor } from '../backend/fast-kernels/wasm-heap';

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
