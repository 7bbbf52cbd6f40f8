import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { seededRandom } from '@tapfit/core/testing';
import type { Sample } from './reference';

/** Deterministic uniform [0, 1) (core's testing kit). */
export const rng = seededRandom;

/** Standard normal draws (Box-Muller). */
export function normal(rand: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - rand())) * Math.cos(2 * Math.PI * rand());
}

/** A channels-last tensor of the given shape, values `offset_c + spread_c * N(0,1)` per channel. */
export function randomInput(shape: number[], seed: number, offset = 0, spread = 1): tf.Tensor {
  const draw = normal(rng(seed));
  const c = shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(size);
  for (let i = 0; i < size; i++) {
    const ch = i % c;
    data[i] = offset * (1 + 0.5 * ch) + spread * (1 + 0.25 * ch) * draw();
  }
  return tf.tensor(data, shape);
}

/** `[N, ...spatial, C]` -> samples `[N][S][C]` in float64. */
export function toSamples(t: tf.Tensor): Sample[] {
  const n = t.shape[0];
  const c = t.shape[t.rank - 1];
  const s = t.size / (n * c);
  const data = Array.from(t.dataSync());
  const out: Sample[] = [];
  for (let i = 0; i < n; i++) {
    const sample: Sample = [];
    for (let p = 0; p < s; p++) sample.push(data.slice((i * s + p) * c, (i * s + p + 1) * c));
    out.push(sample);
  }
  return out;
}

/** Largest absolute difference relative to the largest reference magnitude. */
export function relError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  expect(actual.length).to.equal(expected.length);
  let diff = 0;
  let scale = 1e-12;
  for (let i = 0; i < expected.length; i++) {
    diff = Math.max(diff, Math.abs(actual[i] - expected[i]));
    scale = Math.max(scale, Math.abs(expected[i]));
  }
  return diff / scale;
}

export function expectClose(actual: tf.Tensor | ArrayLike<number>, expected: ArrayLike<number> | Sample[], tol: number, what: string): void {
  const a = actual instanceof tf.Tensor ? actual.dataSync() : actual;
  const e = Array.isArray(expected) ? (expected as unknown[]).flat(3) as number[] : expected;
  const err = relError(a, e);
  expect(err, `${what}: relative error ${err.toExponential(2)}`).to.be.below(tol);
}

/** Run `fn` and check it left no tensor behind. */
export function expectNoLeak<T>(fn: () => T, what = 'call'): T {
  const before = tf.memory().numTensors;
  const result = fn();
  expect(tf.memory().numTensors, `${what} leaked tensors`).to.equal(before);
  return result;
}
