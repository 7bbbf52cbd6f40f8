import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { fashionSplits } from '../src/lib/fashion-mnist';

describe('Fashion-MNIST splits', () => {
  it('never hold the package\'s empty entries (no NaN pixels); the same seed gives the same order', () => {
    // With seed 0 one empty entry sits at position 23,224 of the permutation.
    const [a, b] = fashionSplits([20_000, 10_000], 0);
    for (const split of [a, b]) {
      const x = split.x.dataSync();
      expect(x.every((p) => p >= 0 && p <= 1), 'pixels in [0, 1]').to.equal(true);
    }
    const [again] = fashionSplits([100], 0);
    expect(Array.from(again.y.dataSync())).to.deep.equal(Array.from(a.y.dataSync().slice(0, 100)));
    tf.dispose([a.x, a.y, b.x, b.y, again.x, again.y]);
    expect(() => fashionSplits([70_001], 0)).to.throw(/70000/);
  });
});
