import * as tf from '@tensorflow/tfjs';
import { fromLayersModel, sgd, type Segment } from '@tapfit/core';
import { recordHostReads } from '@tapfit/core/testing';
import { expect } from 'chai';
import { measureSegmentCosts, measureSegmentTimes, measureUpdateCosts } from '../src';

/** Dense 16 -> 256 (relu) -> 64: a weight gradient of 4 k and 16 k floats, three segments. */
const model = () =>
  tf.sequential({
    layers: [tf.layers.dense({ inputShape: [16], units: 256, activation: 'relu' }), tf.layers.activation({ activation: 'tanh' }), tf.layers.dense({ units: 64 })],
  });

/** `segments` with each forward logging its segment's index into `calls`. */
function logged(segments: readonly Segment[], calls: number[]): Segment[] {
  return segments.map((s, i) => ({ ...s, forward: (xs, ctx) => (calls.push(i), s.forward(xs, ctx)) }));
}

describe('segment costs (how the threaded pipeline balances its stages)', () => {
  it('waits for each result by reading back one value, not the whole tensor (a weight gradient read back costs more than the kernels it times)', () => {
    const m = model();
    const segments = fromLayersModel(m).segments;
    const x = tf.randomNormal([1, 16], 0, 1, 'float32', 1);
    const sizes = recordHostReads(() => {
      measureSegmentCosts(segments, x, 2);
      measureUpdateCosts(segments, sgd({ lr: 0.1, momentum: 0.9 }).transforms, 2);
    });
    expect(sizes.length).to.be.above(0);
    expect(Math.max(...sizes)).to.equal(1);
    x.dispose();
    m.dispose();
  });

  it('times in rounds over all segments (a slow moment of the machine lands on every segment alike), after 3 untimed rounds', () => {
    const m = model();
    const calls: number[] = [];
    const segments = logged(fromLayersModel(m).segments, calls);
    const x = tf.randomNormal([2, 16], 0, 1, 'float32', 1);
    const times = measureSegmentTimes(segments, x, 4);
    // One forward to get each segment's input, then 3 + 4 rounds of 0, 1, 2.
    expect(calls).to.deep.equal([0, 1, 2, ...Array.from({ length: 7 }, () => [0, 1, 2]).flat()]);
    expect(times).to.have.length(3);
    times.forEach((t) => expect(t).to.be.a('number').and.at.least(0));
    // With the backward: each round times a forward, then a backward that recomputes it.
    calls.length = 0;
    const costs = measureSegmentCosts(segments, x, 4);
    expect(calls).to.deep.equal([0, 1, 2, ...Array.from({ length: 7 }, () => [0, 0, 1, 1, 2, 2]).flat()]);
    expect(costs.forward).to.have.length(3);
    expect(costs.backward).to.have.length(3);
    x.dispose();
    m.dispose();
  });

  it('leaves no tensor behind and the weights untouched', () => {
    const m = model();
    const segments = fromLayersModel(m).segments;
    const x = tf.randomNormal([1, 16], 0, 1, 'float32', 1);
    const before = m.trainableWeights.map((w) => Array.from(w.read().dataSync()));
    const tensors = tf.memory().numTensors;
    measureSegmentCosts(segments, x, 2);
    measureSegmentTimes(segments, x, 2);
    const update = measureUpdateCosts(segments, sgd({ lr: 0.1, momentum: 0.9 }).transforms, 2);
    expect(tf.memory().numTensors).to.equal(tensors);
    expect(update[1]).to.equal(0); // the activation has no parameters
    m.trainableWeights.forEach((w, i) => expect(Array.from(w.read().dataSync())).to.deep.equal(before[i]));
    x.dispose();
    m.dispose();
  });
});
