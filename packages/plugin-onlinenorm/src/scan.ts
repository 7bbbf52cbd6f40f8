import * as tf from '@tensorflow/tfjs';

/**
 * Vectorised first-order linear recurrences along a batch, the engine behind Online
 * Normalization's "samples strictly in order" statistics. Both return every state,
 * `[N+1, C]`: row 0 is `init` (the state before sample 0), row i+1 the state after
 * sample i, so row i is what sample i sees and row N is what the next batch sees.
 */

/** Longest run handled by one matrix; longer batches are chained (cost O(N * chunk * C)). */
const CHUNK = 128;

/**
 * `s_{i+1} = alpha * s_i + inputs_i` as one matmul with the geometric kernel
 * `K[i][0] = alpha^i`, `K[i][j+1] = alpha^(i-1-j)` for `j < i` (the closed form of the
 * recurrence; the reference's batched variant convolves with the same kernel).
 */
export function geometricScan(alpha: number, init: tf.Tensor1D, inputs: tf.Tensor2D): tf.Tensor2D {
  return chunked(init, inputs, (start, chunkInputs) => {
    const n = chunkInputs.shape[0];
    const kernel = tf.tensor2d(geometricKernel(alpha, n), [n + 1, n + 1]);
    return tf.matMul(kernel, tf.concat([start.expandDims(0), chunkInputs], 0));
  });
}

/**
 * `s_{i+1} = coeffs_i * s_i + inputs_i` with per-sample coefficients (the backward's
 * output-direction accumulator). Inclusive Kogge-Stone scan over the affine maps
 * `s -> A s + B`, composed pairwise in ceil(log2(N+1)) rounds; map 0 is the constant
 * `s -> init`, so after the scan `B_i` is the state after i samples. No division, so
 * zero or negative coefficients are fine.
 */
export function affineScan(coeffs: tf.Tensor2D, init: tf.Tensor1D, inputs: tf.Tensor2D): tf.Tensor2D {
  return chunked(init, inputs, (start, chunkInputs, offset) => {
    const n = chunkInputs.shape[0];
    const chunkCoeffs = n === coeffs.shape[0] ? coeffs : coeffs.slice([offset, 0], [n, -1]);
    let a = tf.concat([tf.zerosLike(start).expandDims(0), chunkCoeffs], 0) as tf.Tensor2D;
    let b = tf.concat([start.expandDims(0), chunkInputs], 0) as tf.Tensor2D;
    const length = n + 1;
    for (let d = 1; d < length; d *= 2) {
      // Compose each map with the one d places earlier; the first d have none (identity).
      const earlierA = tf.pad(a.slice([0, 0], [length - d, -1]), [[d, 0], [0, 0]], 1);
      const earlierB = tf.pad(b.slice([0, 0], [length - d, -1]), [[d, 0], [0, 0]], 0);
      b = tf.add<tf.Tensor2D>(tf.mul(a, earlierB), b);
      if (2 * d < length) a = tf.mul<tf.Tensor2D>(a, earlierA);
    }
    return b;
  });
}

/** Run `scan` over chunks of at most CHUNK samples, threading the last state. */
function chunked(
  init: tf.Tensor1D,
  inputs: tf.Tensor2D,
  scan: (start: tf.Tensor1D, chunkInputs: tf.Tensor2D, offset: number) => tf.Tensor2D,
): tf.Tensor2D {
  const n = inputs.shape[0];
  if (n <= CHUNK) return scan(init, inputs, 0);
  const rows: tf.Tensor2D[] = [];
  let start = init;
  for (let offset = 0; offset < n; offset += CHUNK) {
    const size = Math.min(CHUNK, n - offset);
    const states = scan(start, inputs.slice([offset, 0], [size, -1]), offset);
    rows.push(states.slice([0, 0], [size, -1]));
    start = states.slice([size, 0], [1, -1]).reshape([-1]) as tf.Tensor1D;
  }
  rows.push(start.expandDims(0));
  return tf.concat(rows, 0);
}

const kernelCache = new Map<string, Float32Array>();

/** The `[n+1, n+1]` geometric kernel, computed in float64 and cached as float32. */
function geometricKernel(alpha: number, n: number): Float32Array {
  const key = `${alpha}:${n}`;
  let kernel = kernelCache.get(key);
  if (kernel) return kernel;
  const size = n + 1;
  kernel = new Float32Array(size * size);
  for (let i = 0; i < size; i++) {
    kernel[i * size] = alpha ** i;
    for (let j = 0; j < i; j++) kernel[i * size + j + 1] = alpha ** (i - 1 - j);
  }
  if (kernelCache.size > 64) kernelCache.clear();
  kernelCache.set(key, kernel);
  return kernel;
}
