import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { valueAndGradients, vectorJacobianProduct } from '../../src';

// The exported per-piece gradient helpers must give autodiff's numbers exactly.

describe('memory/vjp (valueAndGradients, vectorJacobianProduct)', () => {
  const setup = () => ({
    w: tf.variable(tf.randomNormal([6, 5], 0, 0.5, 'float32', 11)),
    x: tf.randomNormal([3, 6], 0, 1, 'float32', 12),
  });
  const f = (x: tf.Tensor, w: tf.Tensor) => tf.tanh(tf.matMul(x, w));

  it('valueAndGradients equals tf.variableGrads bit for bit and leaks nothing', () => {
    const { w, x } = setup();
    const before = tf.memory().numTensors;
    const ours = valueAndGradients(() => tf.sum(tf.square(f(x, w))), [w, x]);
    const ref = tf.variableGrads(() => tf.sum(tf.square(f(x, w))), [w]);
    expect(ours.value.dataSync()[0]).to.equal(ref.value.dataSync()[0]);
    expect(Array.from(ours.grads[0]!.dataSync())).to.deep.equal(Array.from(ref.grads[w.name].dataSync()));
    expect(ours.grads[1]!.shape).to.deep.equal([3, 6]);
    tf.dispose([ours.value, ...ours.grads.filter((g): g is tf.Tensor => g !== null), ref.value, ...Object.values(ref.grads)]);
    expect(tf.memory().numTensors).to.equal(before);
    tf.dispose([w, x]);
  });

  it('vectorJacobianProduct seeds the outputs with dys exactly (equals tf.grads with dy)', () => {
    const { w, x } = setup();
    const dy = tf.randomNormal([3, 5], 0, 1, 'float32', 13);
    const [dx, dw] = vectorJacobianProduct(() => [f(x, w)], [x, w], [dy]);
    const [rx, rw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => f(a, b))([x, w], dy);
    expect(Array.from(dx!.dataSync())).to.deep.equal(Array.from(rx.dataSync()));
    expect(Array.from(dw!.dataSync())).to.deep.equal(Array.from(rw.dataSync()));
    tf.dispose([dx!, dw!, rx, rw, dy, w, x]);
  });

  it('vectorJacobianProduct gives null everywhere when no output gradient flows', () => {
    const { w, x } = setup();
    expect(vectorJacobianProduct(() => [f(x, w)], [x, w], [null])).to.deep.equal([null, null]);
    tf.dispose([w, x]);
  });
});
