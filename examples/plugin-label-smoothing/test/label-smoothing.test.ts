import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { describeConformance } from '@tapfit/core/testing';
import { labelSmoothing, smoothLabels, withLabelSmoothing } from '../src';

describeConformance({
  plugin: () => labelSmoothing({ epsilon: 0.1 }),
  twin: () => ({ loss: withLabelSmoothing('softmaxCrossEntropy', { epsilon: 0.1 }) }),
  twinTolerance: 0,
});

describe('label smoothing', () => {
  before(() => tf.setBackend('cpu'));

  it('moves epsilon of the mass uniformly (float64 reference)', () => {
    const y = smoothLabels(tf.tensor1d([2, 0], 'int32'), 4, 0.2);
    const ref = [
      [0.05, 0.05, 0.85, 0.05],
      [0.85, 0.05, 0.05, 0.05],
    ];
    const got = y.arraySync() as number[][];
    got.flat().forEach((v, i) => expect(v).to.be.closeTo(ref.flat()[i], 1e-7));
    y.dispose();
  });

  it('equals the cross-entropy against smoothed targets computed by hand', () => {
    const logits = tf.tensor2d([[1, 2, 0.5]]);
    const loss = withLabelSmoothing('softmaxCrossEntropy', { epsilon: 0.3 })(tf.tensor1d([1], 'int32'), logits);
    const z = [1, 2, 0.5];
    const lse = Math.log(z.reduce((a, v) => a + Math.exp(v), 0));
    const target = [0.1, 0.8, 0.1];
    const ref = -target.reduce((a, t, i) => a + t * (z[i] - lse), 0);
    expect(loss.dataSync()[0]).to.be.closeTo(ref, 1e-6);
    tf.dispose([logits, loss]);
  });

  it('rejects epsilon outside [0, 1) naming the option', () => {
    expect(() => labelSmoothing({ epsilon: 1 })).to.throw(/option 'epsilon' must be a number in \[0, 1\) \(got 1\)/);
  });
});
