import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import type { Logger } from '../../src';
import { recordHostReads } from '../../src/testing';

/** A seeded softmax classifier: the same weights every call (so a tapfit and a tfjs copy start equal). */
export function softmaxModel(seed = 1, inputs = 4): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [inputs], units: 8, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed }) }),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }) }),
    ],
  });
}

/** Three Gaussian blobs: x [n, 4], one-hot y [n, 3] (as model.fit's categoricalCrossentropy takes them). */
export function blobTensors(n = 64, seed = 1): { x: tf.Tensor2D; y: tf.Tensor2D; labels: tf.Tensor1D } {
  return tf.tidy(() => {
    const labels = tf.tensor1d(Array.from({ length: n }, (_, i) => (i * 7) % 3), 'int32');
    const centres = tf.tensor2d([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]]);
    const x = tf.add(tf.gather(centres, labels), tf.randomNormal([n, 4], 0, 0.8, 'float32', seed)) as tf.Tensor2D;
    return { x, y: tf.oneHot(labels, 3).toFloat() as tf.Tensor2D, labels };
  });
}

export function recordingLogger(): Logger & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (m) => void lines.push(m), warn: (m) => void lines.push(`warn: ${m}`) };
}

/** Every value of `actual` within `rtol` (relative) of `expected`, key by key. */
export function expectHistoryClose(actual: Record<string, number[]>, expected: Record<string, number[]>, rtol = 1e-5): void {
  expect(Object.keys(actual).sort()).to.deep.equal(Object.keys(expected).sort());
  for (const k of Object.keys(expected)) {
    expect(actual[k].length, k).to.equal(expected[k].length);
    expected[k].forEach((e, i) => {
      const a = actual[k][i];
      if (!(Math.abs(a - e) <= rtol * Math.max(Math.abs(e), 1e-3))) expect.fail(`${k}[${i}]: tapfit ${a}, model.fit ${e}`);
    });
  }
}

/** Tensor reads back to the host while `fn` runs (the kit's recordHostReads). */
export async function countReads(fn: () => Promise<unknown>): Promise<number> {
  return (await recordHostReads(fn)).length;
}
