// The epoch's loss and metric means: sums on the device, weighted by batch size, as model.fit
// averages them. Checked bit for bit against float32 arithmetic done by hand, on cpu (a
// multiply then an add) and on wasm (one fused kernel for both).

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { BatchMeans } from '../src/train/batch-means';
import { useBackend } from './fixtures';

/** Deterministic values of very different sizes (losses, accuracies, a large metric). */
function batchValues(count: number, width: number): number[][] {
  let s = 12345;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  return Array.from({ length: count }, () => Array.from({ length: width }, (_, j) => Math.fround(next() * 10 ** (j - 1))));
}

/** float32 arithmetic as model.fit's sums do it: sum += fl(value * size), then fl(sum / samples). */
function reference(values: number[][], sizes: number[]): number[] {
  const sums = values[0].map(() => 0);
  values.forEach((v, b) => v.forEach((x, j) => (sums[j] = Math.fround(sums[j] + Math.fround(x * sizes[b])))));
  const samples = sizes.reduce((a, b) => a + b, 0);
  return sums.map((s) => Math.fround(s / samples));
}

for (const backend of ['cpu', 'wasm']) {
  describe(`BatchMeans on ${backend}`, () => {
    useBackend(backend);

    it('the means weight each batch by its size, in float32, as model.fit: bit for bit', async () => {
      const values = batchValues(9, 4);
      const sizes = [64, 64, 64, 64, 64, 64, 64, 64, 37];
      const before = tf.memory().numTensors;
      const means = new BatchMeans();
      for (const [b, v] of values.entries()) {
        const t = tf.tensor1d(v);
        means.add(t, sizes[b]);
        t.dispose();
      }
      expect(means.count).to.equal(64 * 8 + 37);
      expect(await means.means()).to.deep.equal(reference(values, sizes));
      means.dispose();
      expect(tf.memory().numTensors, 'no tensor left').to.equal(before);
    });

    it('sums read back and continued give the same means as one uninterrupted run', async () => {
      const values = batchValues(6, 3);
      const sizes = [32, 32, 32, 32, 32, 5];
      const whole = new BatchMeans();
      let first = new BatchMeans();
      for (const [b, v] of values.entries()) {
        const t = tf.tensor1d(v);
        whole.add(t, sizes[b]);
        if (b === 3) {
          const read = (await first.read())!;
          first.dispose();
          first = BatchMeans.continuing(read.sums, read.samples);
        }
        first.add(t, sizes[b]);
        t.dispose();
      }
      expect(await first.means()).to.deep.equal(await whole.means());
      expect(await whole.means()).to.deep.equal(reference(values, sizes));
      first.dispose();
      whole.dispose();
    });
  });
}
