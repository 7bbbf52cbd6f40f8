import * as tf from '@tensorflow/tfjs';
import { selectBackend, trainableVariables, type TrainableModel } from '@tapfit/core';
import { expect } from 'chai';
import { diceCrossEntropy, revBiFPN, reversibleUNet3d } from '../src';
import { bitsOf, expectSameGradients, invertPlan, stepGradients } from './helpers';

const xent = (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.losses.softmaxCrossEntropy(tf.oneHot(tf.cast(yTrue, 'int32'), yPred.shape[1] as number), yPred) as tf.Scalar;

// The benchmark trains on wasm (core's shim supplies the missing gradient kernels): the
// reversible step there must equal cpu's plain autodiff. The cross-backend checks use plain
// float32 (fixedPoint: 0): rounding to the fixed-point grid turns the backends' last-bit
// differences into whole grid steps, which normalisation over a few values then amplifies.
// On one backend, exact arithmetic must give autodiff's gradients bit for bit.
describe('revsilo on the wasm backend', () => {
  after(async () => {
    await selectBackend('cpu', { log: false });
  });

  const onBoth = async (build: () => { model: Parameters<typeof stepGradients>[0]; x: () => tf.Tensor; y: () => tf.Tensor; loss: Parameters<typeof stepGradients>[3] }) => {
    await selectBackend('cpu', { log: false });
    const cpu = build();
    const want = stepGradients(cpu.model.stored!(), cpu.x(), cpu.y(), cpu.loss, 'autodiff');
    await selectBackend('wasm', { log: false });
    const wasm = build();
    const got = stepGradients(wasm.model, wasm.x(), wasm.y(), wasm.loss, invertPlan(wasm.model));
    // Two builds: same weights, variable names with other suffixes; compare in order.
    const inOrder = (model: TrainableModel, grads: Record<string, Float32Array>) => Object.fromEntries(trainableVariables(model).map((v, i) => [i, grads[v.name]]));
    expectSameGradients(inOrder(wasm.model, got.grads), inOrder(cpu.model, want.grads), 1e-3, 1e-5);
  };

  it('RevBiFPN: executor gradients under invert equal cpu autodiff of the stored twin', async () => {
    await onBoth(() => ({
      model: revBiFPN({ width: 0.25, streams: 3, extensions: 1, inputSize: 32, classes: 3, dropout: 0, fixedPoint: 0 }),
      x: () => tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 1),
      y: () => tf.tensor1d([0, 1, 2, 0], 'int32'),
      loss: xent,
    }));
  });

  it('3-D U-Net: executor gradients under invert equal cpu autodiff of the stored twin', async () => {
    await onBoth(() => ({
      model: reversibleUNet3d({ levels: 3, blocksPerLevel: 1, baseChannels: 4, expandRatio: 2, classes: 3, fixedPoint: 0 }),
      x: () => tf.randomNormal([1, 8, 8, 8, 1], 0, 1, 'float32', 2),
      y: () => tf.randomUniform([1, 8, 8, 8], 0, 3, 'int32', 3),
      loss: diceCrossEntropy({ classes: 3 }),
    }));
  });

  it('with exact arithmetic (the default), wasm executor gradients under invert equal wasm autodiff of the stored twin bit for bit', async () => {
    await selectBackend('wasm', { log: false });
    const byName = (grads: Record<string, Float32Array>) => Object.keys(grads).sort().map((k) => [k, bitsOf(grads[k])]);
    const check = (model: Parameters<typeof stepGradients>[0], x: tf.Tensor, y: tf.Tensor, loss: Parameters<typeof stepGradients>[3]) => {
      const want = stepGradients(model.stored!(), x, y, loss, 'autodiff');
      const got = stepGradients(model, x, y, loss, invertPlan(model));
      expect(got.value).to.equal(want.value);
      expect(byName(got.grads)).to.deep.equal(byName(want.grads));
    };
    check(revBiFPN({ width: 0.25, streams: 3, extensions: 1, inputSize: 32, classes: 3, dropout: 0 }), tf.randomNormal([4, 32, 32, 3], 0, 1, 'float32', 1), tf.tensor1d([0, 1, 2, 0], 'int32'), xent);
    check(reversibleUNet3d({ levels: 3, blocksPerLevel: 1, baseChannels: 4, expandRatio: 2, classes: 3 }), tf.randomNormal([1, 8, 8, 8, 1], 0, 1, 'float32', 2), tf.randomUniform([1, 8, 8, 8], 0, 3, 'int32', 3), diceCrossEntropy({ classes: 3 }));
  });
});
