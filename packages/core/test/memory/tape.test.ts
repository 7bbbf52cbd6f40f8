import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { gradients } from '../../src/memory/tape';

// The freeing backward must be the engine's backward, only with earlier frees.

const vars = () => ({
  w1: tf.variable(tf.randomNormal([8, 32], 0, 0.3, 'float32', 1)),
  w2: tf.variable(tf.randomNormal([32, 8], 0, 0.3, 'float32', 2)),
  unused: tf.variable(tf.randomNormal([3], 0, 1, 'float32', 3)),
});

/** A residual block (x feeds two ops, so its gradient is a sum) whose loss ignores `unused`. */
const block = (x: tf.Tensor, v: ReturnType<typeof vars>) => (): tf.Scalar =>
  tf.sum(tf.square(tf.add(x, tf.matMul(tf.relu(tf.matMul(x, v.w1)), v.w2))));

async function peakAndGrads(run: () => { value: tf.Tensor; grads: (tf.Tensor | null)[] }) {
  const start = tf.memory().numBytes;
  let out: { value: number; grads: (number[] | null)[] } = { value: 0, grads: [] };
  const info = await tf.profile(() => {
    const r = run();
    out = { value: r.value.dataSync()[0], grads: r.grads.map((g) => (g ? Array.from(g.dataSync()) : null)) };
    tf.dispose([r.value, ...r.grads.filter((g): g is tf.Tensor => g !== null)]);
  });
  return { peak: info.peakBytes - start, ...out };
}

describe('memory/tape gradients (a backward that frees as it goes)', () => {
  it("equals tf.engine().gradients (values, nulls, sums over fan-out) at a lower peak, leaking nothing", async () => {
    const v = vars();
    const x = tf.randomNormal([64, 8], 0, 1, 'float32', 4);
    const targets = [x, v.w1, v.w2, v.unused];
    const before = tf.memory().numTensors;
    const ours = await peakAndGrads(() => gradients(block(x, v), targets));
    const engine = await peakAndGrads(() => tf.engine().gradients(block(x, v), targets, undefined, true));
    expect(tf.memory().numTensors).to.equal(before);
    expect(tf.engine().state.activeTape).to.equal(null);
    expect(ours.value).to.equal(engine.value);
    expect(ours.grads[3]).to.equal(null);
    expect(engine.grads[3]).to.equal(null);
    ours.grads.slice(0, 3).forEach((g, k) => expect(g).to.deep.equal(engine.grads[k]));
    expect(ours.peak).to.be.below(engine.peak);
    tf.dispose([x, ...Object.values(v)]);
  });

  it('starts from a given dy and leaves it to the caller', () => {
    const w = tf.variable(tf.randomNormal([4, 4], 0, 1, 'float32', 5));
    const x = tf.randomNormal([2, 4], 0, 1, 'float32', 6);
    const dy = tf.randomNormal([2, 4], 0, 1, 'float32', 7);
    const r = gradients(() => tf.tanh(tf.matMul(x, w)), [w], dy);
    const ref = tf.engine().gradients(() => tf.tanh(tf.matMul(x, w)), [w], dy, true);
    expect(dy.isDisposed).to.equal(false);
    expect(Array.from(r.grads[0]!.dataSync())).to.deep.equal(Array.from(ref.grads[0]!.dataSync()));
    tf.dispose([r.value, ref.value, r.grads[0]!, ref.grads[0]!, w, x, dy]);
  });

  it('frees the tape when the forward throws', () => {
    const before = tf.memory().numTensors;
    const x = tf.ones([3]);
    expect(() =>
      gradients(() => {
        tf.exp(x);
        throw new Error('boom');
      }, [x]),
    ).to.throw('boom');
    x.dispose();
    expect(tf.memory().numTensors).to.equal(before);
    expect(tf.engine().state.gradientDepth).to.equal(0);
  });
});
