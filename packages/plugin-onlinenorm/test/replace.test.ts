import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { OnlineNorm, onlineNormLayers, replaceBatchNorm } from '../src';
import { expectClose, randomInput } from './helpers';

const seeded = (seed: number) => tf.initializers.glorotUniform({ seed });

/** dense - BN - relu - dense - BN - dense, with BN weights and moving statistics moved off their initial values. */
async function trainedMlp(): Promise<tf.Sequential> {
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ units: 6, inputShape: [4], kernelInitializer: seeded(1), name: 'd1' }),
      tf.layers.batchNormalization({ name: 'bn1' }),
      tf.layers.activation({ activation: 'relu', name: 'act' }),
      tf.layers.dense({ units: 5, kernelInitializer: seeded(2), name: 'd2' }),
      tf.layers.batchNormalization({ name: 'bn2', momentum: 0.5 }),
      tf.layers.dense({ units: 2, kernelInitializer: seeded(3), name: 'out' }),
    ],
  });
  model.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
  const x = randomInput([32, 4], 1, 2, 1);
  const y = randomInput([32, 2], 2);
  await model.fit(x, y, { epochs: 3, batchSize: 8, verbose: 0 });
  tf.dispose([x, y]);
  return model;
}

/** conv - BN - (nested sequential: flatten - dense - BN) - dense, functional. */
function nestedConvNet(): tf.LayersModel {
  const input = tf.input({ shape: [5, 5, 2], name: 'image' });
  const conv = tf.layers.conv2d({ filters: 3, kernelSize: 3, kernelInitializer: seeded(4), name: 'conv' }).apply(input) as tf.SymbolicTensor;
  const bn = tf.layers.batchNormalization({ name: 'conv_bn' }).apply(conv) as tf.SymbolicTensor;
  const head = tf.sequential({
    name: 'head',
    layers: [
      tf.layers.flatten({ inputShape: [3, 3, 3], name: 'flat' }),
      tf.layers.dense({ units: 4, kernelInitializer: seeded(5), name: 'head_dense' }),
      tf.layers.batchNormalization({ name: 'head_bn' }),
    ],
  });
  const out = tf.layers.dense({ units: 2, kernelInitializer: seeded(6), name: 'logits' }).apply(head.apply(bn) as tf.SymbolicTensor) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'convnet' });
}

const classNames = (model: tf.LayersModel): string[] =>
  model.layers.flatMap((l) => (l instanceof tf.LayersModel ? [`${l.name}[${classNames(l).join(',')}]`] : [l.getClassName()]));

const values = (model: tf.LayersModel) => model.weights.map((w) => Array.from(w.read().dataSync()));

describe('replaceBatchNorm (functional twin)', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  it('swaps every BatchNormalization for OnlineNorm with the same name, gamma, beta and (as starting M, V) moving statistics', async () => {
    const model = await trainedMlp();
    const originalValues = values(model);
    const replaced = replaceBatchNorm(model, { epsilon: 1e-3, ecm: 'none' });

    expect(classNames(replaced)).to.deep.equal(['Dense', 'OnlineNorm', 'Activation', 'Dense', 'OnlineNorm', 'Dense']);
    expect(classNames(model), 'the input model is untouched').to.deep.equal(['Dense', 'BatchNormalization', 'Activation', 'Dense', 'BatchNormalization', 'Dense']);
    expect(values(model)).to.deep.equal(originalValues);
    for (const name of ['bn1', 'bn2']) {
      const [gamma, beta, movingMean, movingVariance] = model.getLayer(name).getWeights();
      const on = replaced.getLayer(name) as OnlineNorm;
      const [g, b] = on.getWeights();
      expect(Array.from(g.dataSync())).to.deep.equal(Array.from(gamma.dataSync()));
      expect(Array.from(b.dataSync())).to.deep.equal(Array.from(beta.dataSync()));
      expect(Array.from(on.state.mean.dataSync())).to.deep.equal(Array.from(movingMean.dataSync()));
      expect(Array.from(on.state.variance.dataSync())).to.deep.equal(Array.from(movingVariance.dataSync()));
      expect(Array.from(on.state.u.dataSync())).to.deep.equal(Array(gamma.size).fill(0));
      expect(gamma.dataSync().some((v) => Math.abs(v - 1) > 1e-3), 'the test model has trained gammas').to.equal(true);
    }
    for (const name of ['d1', 'd2', 'out']) {
      expect(replaced.getLayer(name).getWeights().map((w) => Array.from(w.dataSync()))).to.deep.equal(model.getLayer(name).getWeights().map((w) => Array.from(w.dataSync())));
    }
    // In inference, with BN's epsilon and no clamping, OnlineNorm computes what BatchNorm does.
    const x = randomInput([7, 4], 9, 2, 1);
    expectClose((replaced.predict(x) as tf.Tensor).dataSync(), (model.predict(x) as tf.Tensor).dataSync(), 1e-5, 'predictions');

    // Independent weights: training the copy leaves the original alone.
    replaced.compile({ optimizer: tf.train.sgd(0.1), loss: 'meanSquaredError' });
    await replaced.fit(x, tf.zeros([7, 2]), { epochs: 1, batchSize: 7, verbose: 0 });
    expect(values(model)).to.deep.equal(originalValues);
    expect((replaced.getLayer('bn1') as OnlineNorm).state.trainingCalls).to.equal(1);
    tf.dispose(x);
    model.dispose();
    replaced.dispose();
  });

  it('rebuilds functional models and nested models, keeping the wiring', () => {
    const model = nestedConvNet();
    const replaced = replaceBatchNorm(model, { epsilon: 1e-3, ecm: 'none' });
    expect(classNames(replaced)).to.deep.equal(['InputLayer', 'Conv2D', 'OnlineNorm', 'head[Flatten,Dense,OnlineNorm]', 'Dense']);
    expect(onlineNormLayers(replaced).map((l) => l.name)).to.deep.equal(['conv_bn', 'head_bn']);
    const x = randomInput([3, 5, 5, 2], 4);
    expectClose((replaced.predict(x) as tf.Tensor).dataSync(), (model.predict(x) as tf.Tensor).dataSync(), 1e-5, 'predictions');
    tf.dispose(x);
    model.dispose();
    replaced.dispose();
  });

  it('replaces only what the selector names: names, RegExp, predicate', () => {
    const model = nestedConvNet();
    const cases: [Parameters<typeof replaceBatchNorm>[1], string[]][] = [
      [{ replace: ['head_bn'] }, ['head_bn']],
      [{ replace: /^conv/ }, ['conv_bn']],
      [{ replace: (l) => l.name.endsWith('_bn') }, ['conv_bn', 'head_bn']],
    ];
    for (const [cfg, expected] of cases) {
      const replaced = replaceBatchNorm(model, cfg);
      expect(onlineNormLayers(replaced).map((l) => l.name)).to.deep.equal(expected);
      replaced.dispose();
    }
    model.dispose();
  });

  it('a BatchNorm without gamma and beta (center and scale false) becomes an OnlineNorm without them, unless affine is given', () => {
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 3, inputShape: [4], kernelInitializer: seeded(7), name: 'd' }),
        tf.layers.batchNormalization({ name: 'plain', center: false, scale: false }),
        tf.layers.batchNormalization({ name: 'full' }),
      ],
    });
    const replaced = replaceBatchNorm(model);
    const plain = replaced.getLayer('plain') as OnlineNorm;
    const full = replaced.getLayer('full') as OnlineNorm;
    expect(plain.options.affine).to.equal(false);
    expect(plain.trainableWeights).to.have.length(0);
    expect(full.options.affine).to.equal(true);
    expect(full.trainableWeights.map((w) => w.originalName.split('/').pop())).to.deep.equal(['gamma', 'beta']);
    const forced = replaceBatchNorm(model, { affine: true });
    expect((forced.getLayer('plain') as OnlineNorm).options.affine).to.equal(true);
    for (const m of [model, replaced, forced]) m.dispose();
  });

  it('copyStatistics: false starts from M = 0, V = 1', async () => {
    const model = await trainedMlp();
    const replaced = replaceBatchNorm(model, { copyStatistics: false });
    const on = replaced.getLayer('bn2') as OnlineNorm;
    expect(Array.from(on.state.mean.dataSync())).to.deep.equal([0, 0, 0, 0, 0]);
    expect(Array.from(on.state.variance.dataSync())).to.deep.equal([1, 1, 1, 1, 1]);
    model.dispose();
    replaced.dispose();
  });

  describe('errors name the problem and leave nothing half-done', () => {
    it('a selector that matches nothing, or names a missing or non-BatchNorm layer', () => {
      const model = nestedConvNet();
      expect(() => replaceBatchNorm(model, { replace: ['nope'] })).to.throw(/option 'replace' names 'nope', which is not a layer of the model.*conv_bn, head_bn/);
      expect(() => replaceBatchNorm(model, { replace: ['conv'] })).to.throw(/names 'conv', a Conv2D, not a BatchNormalization/);
      expect(() => replaceBatchNorm(model, { replace: /^zzz/ })).to.throw(/\/\^zzz\/ matches no BatchNormalization layer/);
      expect(() => replaceBatchNorm(model, { replace: () => false })).to.throw(/predicate selects no BatchNormalization/);
      expect(() => replaceBatchNorm(model, { replace: [] })).to.throw(/empty list/);
      expect(() => replaceBatchNorm(model, { replace: 'all' as never })).to.throw(/must be 'batchNorm', a list of layer names, a RegExp or a predicate/);
      expect(() => replaceBatchNorm(model, { alphaFwd: 3 })).to.throw(/replaceBatchNorm: option 'alphaFwd'/);
      model.dispose();
    });

    it('a model without BatchNormalization', () => {
      const model = tf.sequential({ layers: [tf.layers.dense({ units: 2, inputShape: [3] })] });
      expect(() => replaceBatchNorm(model)).to.throw(/found no BatchNormalization layer.*\(none\)/);
      model.dispose();
    });

    it('a channels-first BatchNorm (channel-count mismatch with channels-last OnlineNorm)', () => {
      const model = tf.sequential({ layers: [tf.layers.batchNormalization({ axis: 1, inputShape: [3, 4, 4], name: 'cf_bn' })] });
      const before = tf.memory().numTensors;
      expect(() => replaceBatchNorm(model)).to.throw(/'cf_bn' normalises axis 1 of input \[,3,4,4\] \(3 channels\).*last axis \(4 channels\): channel-count mismatch/);
      expect(tf.memory().numTensors).to.equal(before);
      model.dispose();
    });
  });
});
