import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { watchPeakBytes } from '../../src';
import { useBackend } from '../fixtures';

/** Work whose live bytes rise and fall: a, b and a gradient tape inside one tidy. */
const work = () =>
  tf.tidy(() => {
    const a = tf.randomNormal([64, 32], 0, 1, 'float32', 1);
    const w = tf.ones([32, 16]);
    return tf.grad((m: tf.Tensor) => tf.sum(tf.relu(tf.matMul(a, m))))(w);
  });

describe('watchPeakBytes', () => {
  useBackend('cpu');

  it("equals tf.profile's peak bytes for the same work, and restarts at each take", async () => {
    const profiled = await tf.profile(() => work().dispose());
    const watch = watchPeakBytes();
    try {
      watch.take();
      work().dispose();
      const watched = watch.take();
      expect(watched).to.equal(profiled.peakBytes);
      expect(watched).to.be.greaterThan(tf.memory().numBytes + 64 * 32 * 4);
      // Nothing ran since: the peak is what is live now.
      expect(watch.take()).to.equal(tf.memory().numBytes);
    } finally {
      watch.stop();
    }
  });

  it('stops: later kernels are not watched', () => {
    const watch = watchPeakBytes();
    watch.stop();
    work().dispose();
    expect(watch.take()).to.equal(tf.memory().numBytes);
  });
});
