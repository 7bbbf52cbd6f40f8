import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { applyUpdates } from '../../src/transforms';
import { useCpuBackend } from './harness';

describe('transforms: applyUpdates', () => {
  useCpuBackend();

  it('adds each update to its parameter; parameters without an update stay', () => {
    const params = { a: tf.variable(tf.tensor([1, 2])), b: tf.variable(tf.tensor([[3]])) };
    const updates = { a: tf.tensor([0.5, -1]) };
    const start = tf.memory().numTensors;
    applyUpdates(params, updates);
    expect(tf.memory().numTensors).to.equal(start);
    expect(Array.from(params.a.dataSync())).to.deep.equal([1.5, 1]);
    expect(Array.from(params.b.dataSync())).to.deep.equal([3]);
    tf.dispose([...Object.values(params), updates.a]);
  });

  it('checks every key and shape before changing anything', () => {
    const params = { a: tf.variable(tf.tensor([1, 2])), b: tf.variable(tf.tensor([3])) };
    const good = tf.tensor([10, 10]);
    const wrongShape = tf.tensor([1, 1]);
    expect(() => applyUpdates(params, { a: good, b: wrongShape }))
      .to.throw("applyUpdates: parameter 'b' has shape [1] but its update has shape [2].")
      .with.property('code', 'TAPFIT_E_SHAPE');
    expect(() => applyUpdates(params, { a: good, c: good }))
      .to.throw(/update 'c' has no parameter \(parameters: a, b\)/)
      .with.property('code', 'TAPFIT_E_CONFIG');
    expect(Array.from(params.a.dataSync())).to.deep.equal([1, 2]);
    tf.dispose([...Object.values(params), good, wrongShape]);
  });
});
