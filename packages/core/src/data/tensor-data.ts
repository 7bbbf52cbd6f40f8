import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { ErrorCodes, TapfitError } from '../errors';
import type { Batch, BatchOptions, DataSource } from './data-source';

/** A seeded permutation of 0..n-1 (Fisher-Yates), the same for the same (seed, epoch). */
export function permutation(n: number, seed: number, epoch: number): Int32Array {
  const rng = seedrandom(`tapfit:${seed}:${epoch}`);
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx;
}

/**
 * In-memory data: x and y as tensors with the sample axis first. Batches are gathered
 * on the device from a seeded permutation. The source keeps x and y; `dispose()` frees them.
 */
export class TensorData implements DataSource {
  readonly size: number;
  readonly xShape: readonly number[];

  constructor(
    readonly x: tf.Tensor,
    readonly y: tf.Tensor,
  ) {
    if (x.shape[0] !== y.shape[0]) {
      throw new TapfitError(ErrorCodes.SHAPE, `data: x has ${x.shape[0]} samples but y has ${y.shape[0]}; they must match.`);
    }
    this.size = x.shape[0];
    this.xShape = x.shape.slice(1);
  }

  *batches({ batchSize, shuffle, seed, epoch, startBatch = 0 }: BatchOptions): Iterator<Batch> {
    const order = shuffle ? permutation(this.size, seed, epoch) : null;
    for (let start = startBatch * batchSize; start < this.size; start += batchSize) {
      const end = Math.min(start + batchSize, this.size);
      if (!order) {
        yield { x: tf.slice(this.x, start, end - start), y: tf.slice(this.y, start, end - start) };
        continue;
      }
      const idx = tf.tensor1d(order.subarray(start, end), 'int32');
      const batch = { x: tf.gather(this.x, idx), y: tf.gather(this.y, idx) };
      idx.dispose();
      yield batch;
    }
  }

  /** The first `n` samples (copies). */
  take(n: number): TensorData {
    return new TensorData(tf.slice(this.x, 0, n), tf.slice(this.y, 0, n));
  }

  dispose(): void {
    tf.dispose([this.x, this.y]);
  }
}

type Numeric = ArrayLike<number> | number[][] | number[][][] | number[][][][];

/**
 * In-memory data from arrays or typed arrays. Nested arrays carry their own shape;
 * flat (typed) arrays need `xShape`/`yShape` (per sample, without the batch axis).
 * Integer class labels given as a flat array stay int32 class indices.
 */
export function arrayData(spec: { x: Numeric; y: Numeric; xShape?: number[]; yShape?: number[] }): TensorData {
  const toTensor = (v: Numeric, shape: number[] | undefined, what: string, dtype: 'float32' | 'int32'): tf.Tensor => {
    const flat = !Array.isArray(v) || !Array.isArray(v[0]);
    if (!flat) return tf.tensor(v as number[][], undefined, dtype);
    const n = (v as ArrayLike<number>).length;
    const per = (shape ?? []).reduce((a, b) => a * b, 1);
    if (n % per !== 0) {
      throw new TapfitError(ErrorCodes.SHAPE, `data: ${what} has ${n} values, not a multiple of the sample shape [${shape}] (${per} values).`);
    }
    return tf.tensor(v as ArrayLike<number> as Float32Array, [n / per, ...(shape ?? [])], dtype);
  };
  const yIsLabels = !spec.yShape && !(Array.isArray(spec.y) && Array.isArray(spec.y[0]));
  return new TensorData(toTensor(spec.x, spec.xShape, 'x', 'float32'), toTensor(spec.y, spec.yShape, 'y', yIsLabels ? 'int32' : 'float32'));
}

/** In-memory data from tensors (the source keeps them). */
export function tensorData(x: tf.Tensor, y: tf.Tensor): TensorData {
  return new TensorData(x, y);
}
