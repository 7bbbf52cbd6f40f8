import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import type { SharedData } from './protocol';

/** Copies x and y once into SharedArrayBuffers that every worker reads. */
export function shareData(data: { x: tf.Tensor; y: tf.Tensor }): SharedData {
  const { x, y } = data;
  if (x.shape[0] !== y.shape[0]) {
    throw new TapfitError(ErrorCodes.SHAPE, `asyncTrain: data.x has ${x.shape[0]} samples but data.y has ${y.shape[0]}; they must match.`);
  }
  const yDtype = y.dtype === 'int32' ? 'int32' : y.dtype === 'float32' ? 'float32' : null;
  if (x.dtype !== 'float32' || !yDtype) {
    throw new TapfitError(ErrorCodes.CONFIG, `asyncTrain: data.x must be float32 and data.y float32 or int32 (got ${x.dtype}, ${y.dtype}); cast them first.`);
  }
  const share = (t: tf.Tensor) => {
    const buffer = new SharedArrayBuffer(t.size * 4);
    if (t.dtype === 'int32') new Int32Array(buffer).set(t.dataSync() as Int32Array);
    else new Float32Array(buffer).set(t.dataSync() as Float32Array);
    return buffer;
  };
  return { x: share(x), xShape: x.shape.slice(1), y: share(y), yShape: y.shape.slice(1), yDtype };
}

/** Sample indices of worker `k` of `workers`: every workers-th sample from k. */
export function shardOf(k: number, workers: number, samples: number): Int32Array {
  return Int32Array.from({ length: Math.ceil((samples - k) / workers) }, (_, i) => k + i * workers);
}
