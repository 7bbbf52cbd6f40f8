import * as tf from '@tensorflow/tfjs';
import { sgd, type TrainableModel } from '@tapfit/core';
import { blobData, testTrainer, tinyModel } from '@tapfit/core/testing';
import { expect } from 'chai';
import { applyLora, applyLoraToSegments, lora } from '../src';
import { perturbAdapters, sameValues, useCpu } from './helpers';
import { denseSegments, disposeModel } from './segment-helpers';

// merge(); unmerge() puts back the very weights merge() overwrote. Subtracting s·A·B again
// rounded W each time, and with the adapter trained between round trips the roundings added
// up (5.3e-6 after 1,000 cycles).
describe('merge / unmerge round trips', () => {
  useCpu();

  const paths: [string, () => tf.LayersModel | TrainableModel][] = [
    ['tfjs-layers model', () => tinyModel()],
    ['segment model', () => denseSegments()],
  ];
  for (const [kind, makeModel] of paths) {
    it(`${kind}: 1,000 round trips with a training step between each leave the base weights bit for bit`, async function () {
      this.timeout(300_000);
      const model = makeModel();
      const plugin = lora({ targets: 'all-dense', rank: 2, seed: 1 });
      const trainer = testTrainer({ model, plugins: [plugin], optimizer: sgd({ lr: 0.05, momentum: 0.9 }) });
      await trainer.setup();
      const handle = plugin.handle;
      // The base weights themselves (variables: their values change in place on assign).
      const weights: tf.Tensor[] = 'layers' in handle ? handle.layers.map((l) => l.kernel.read()) : handle.adapters.map((a) => a.W);
      const before = weights.map((w) => tf.clone(w));
      const data = blobData(8);
      for (let i = 0; i < 1000; i++) {
        await trainer.fit(data, { epochs: 1, batchSize: 8 }); // A and B change
        handle.merge();
        if (i === 999) weights.forEach((w, j) => expect(sameValues(w, before[j]), 'merged').to.equal(false));
        handle.unmerge();
      }
      weights.forEach((w, j) => expect(sameValues(w, before[j]), `weight ${j}`).to.equal(true));
      tf.dispose(before);
      data.dispose();
      trainer.dispose();
      if (model instanceof tf.LayersModel) model.dispose();
      else disposeModel(model);
    });
  }

  it('a kernel written while merged is unmerged by subtracting s·A·B from what it holds, as for a model loaded merged', () => {
    const base = tinyModel();
    const handle = applyLora(base, { targets: 'all-dense', rank: 2, seed: 1 });
    perturbAdapters(handle.model);
    const layer = handle.layers[0];
    handle.merge();
    const written = tf.randomNormal(layer.kernel.shape as number[], 0, 1, 'float32', 5);
    layer.kernel.write(written);
    handle.unmerge();
    const expected = tf.tidy(() => tf.sub(written, layer.deltaKernel('default')));
    expect(sameValues(layer.kernel.read(), expected)).to.equal(true);
    tf.dispose([written, expected]);
    handle.dispose();
    base.dispose();
  });

  it('the kept weights are freed by unmerge, dispose and unload: no tensor is left', () => {
    const base = tinyModel();
    const n0 = tf.memory().numTensors;
    const layers = applyLora(base, { targets: 'all-dense', rank: 2, seed: 1 });
    const n1 = tf.memory().numTensors;
    layers.merge();
    expect(tf.memory().numTensors - n1, 'one kept kernel per target while merged').to.equal(layers.layers.length);
    layers.unmerge();
    expect(tf.memory().numTensors).to.equal(n1);
    layers.merge();
    layers.dispose();
    expect(tf.memory().numTensors).to.equal(n0);
    base.dispose();

    const segments = denseSegments();
    const s0 = tf.memory().numTensors;
    for (const end of ['dispose', 'unload'] as const) {
      const seg = applyLoraToSegments(segments, { targets: 'all-dense', rank: 2, seed: 1 });
      const W = seg.adapters.map((a) => tf.clone(a.W));
      seg.merge();
      if (end === 'dispose') {
        seg.dispose(); // unmerges: the base as it was, bit for bit
        seg.adapters.forEach((a, j) => expect(sameValues(a.W, W[j])).to.equal(true));
      } else {
        seg.unload();
      }
      tf.dispose(W);
      expect(tf.memory().numTensors, end).to.equal(s0);
    }
    disposeModel(segments);
  });
});
