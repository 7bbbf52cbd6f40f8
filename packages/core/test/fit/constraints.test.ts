// Weight constraints (kernelConstraint, biasConstraint): projected after every update as
// Keras does, which tfjs's model.fit skips. The oracle is model.fit with tfjs's own
// projection (LayerVariable.write, which applies the layer's constraint) after each batch.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { sgd, SilentLogger, Trainer } from '../../src';
import { useBackend } from '../fixtures';
import { blobTensors } from './helpers';

/** A dense kernel under maxNorm (columns, as Keras' axis 0), a bias under nonNeg, a second kernel under unitNorm. */
const constrained = () =>
  tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [4], units: 6, activation: 'tanh', kernelInitializer: tf.initializers.randomNormal({ stddev: 1.5, seed: 7 }), kernelConstraint: tf.constraints.maxNorm({ maxValue: 0.8, axis: 0 }), biasConstraint: tf.constraints.nonNeg() }),
      tf.layers.dense({ units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 8 }), kernelConstraint: tf.constraints.unitNorm({ axis: 0 }) }),
    ],
  });

const options = { epochs: 2, batchSize: 8, shuffle: false, verbose: 0 as const };
const values = (m: tf.LayersModel) => m.getWeights().map((w) => Array.from(w.dataSync()));

/** model.fit, and after each batch every constrained weight projected by tfjs-layers itself. */
async function projectedModelFit(x: tf.Tensor, y: tf.Tensor): Promise<tf.LayersModel> {
  const model = constrained();
  model.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
  const project = () => model.trainableWeights.filter((w) => w.constraint).forEach((w) => w.write(tf.clone(w.read())));
  await model.fit(x, y, { ...options, callbacks: { onBatchEnd: async () => project() } });
  return model;
}

describe('weight constraints (kernelConstraint, biasConstraint)', () => {
  useBackend('cpu');

  it('are applied after every update as Keras does: the same weights as model.fit with tfjs-layers projecting each constrained weight after each batch', async () => {
    const { x, y, labels } = blobTensors(32);
    const reference = await projectedModelFit(x, y);
    const model = constrained();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.5 }), logger: new SilentLogger() });
    await t.fit(x, y, options);
    const [kernel, bias, kernel2] = values(model);
    values(reference).forEach((w, i) => values(model)[i].forEach((v, j) => expect(v, `weight ${i}[${j}]`).to.be.closeTo(w[j], 1e-6)));
    // And each constraint holds: column norms <= 0.8, bias >= 0, unit columns.
    const columnNorms = (w: number[], rows: number, cols: number) => Array.from({ length: cols }, (_, c) => Math.hypot(...Array.from({ length: rows }, (_, r) => w[r * cols + c])));
    columnNorms(kernel, 4, 6).forEach((n) => expect(n).to.be.at.most(0.8 + 1e-5));
    bias.forEach((b) => expect(b).to.be.at.least(0));
    columnNorms(kernel2, 6, 3).forEach((n) => expect(n).to.be.closeTo(1, 1e-5));
    t.dispose();
    tf.dispose([x, y, labels]);
    reference.dispose();
  });

  it("'ignore' leaves them out as tfjs's model.fit does: the same weights bit for bit, and the kernel outside its set", async () => {
    const { x, y, labels } = blobTensors(32);
    const reference = constrained();
    reference.compile({ optimizer: tf.train.sgd(0.5), loss: 'categoricalCrossentropy' });
    await reference.fit(x, y, options);
    const model = constrained();
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.5 }), logger: new SilentLogger(), constraints: 'ignore' });
    await t.fit(x, y, options);
    values(reference).forEach((w, i) => expect(values(model)[i], `weight ${i}`).to.deep.equal(w));
    const kernel = values(model)[0];
    const largest = Math.max(...Array.from({ length: 6 }, (_, c) => Math.hypot(...[0, 1, 2, 3].map((r) => kernel[r * 6 + c]))));
    expect(largest, 'the unconstrained kernel has a column longer than maxNorm allows').to.be.above(0.8);
    t.dispose();
    tf.dispose([x, y, labels]);
    reference.dispose();
  });

  it('a skipped step projects nothing (no update, as Keras), and a bad setting is refused naming the option', async () => {
    const model = constrained();
    const before = values(model);
    const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.5 }), logger: new SilentLogger(), nonFinite: 'skip' });
    const x = tf.fill([8, 4], NaN);
    const y = tf.oneHot(tf.zeros([8], 'int32'), 3).toFloat();
    // The epoch's only batch is skipped: the fit then stops (an epoch that trained nothing), after the skip.
    const err = await t.fit(x, y, { epochs: 1, batchSize: 8, verbose: 0 }).catch((e: Error) => e);
    expect(err).to.be.instanceOf(Error).with.property('code', 'TAPFIT_E_NON_FINITE');
    expect(t.skipped).to.equal(1);
    expect(values(model), 'the initial kernel (columns longer than 0.8) is left as it was').to.deep.equal(before);
    t.dispose();
    tf.dispose([x, y]);
    expect(() => new Trainer({ model: constrained(), loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.1 }), constraints: 'project' as never })).to.throw(/constraints/);
  });

  it('describe() lists the constrained weights and what the trainer does with them, and the layers with weight penalties', async () => {
    const lines: string[] = [];
    const logger = { info: (m: string) => void lines.push(m), warn: () => undefined };
    const penalized = tf.sequential({ layers: [tf.layers.dense({ name: 'reg', inputShape: [4], units: 3, kernelRegularizer: tf.regularizers.l2({ l2: 0.1 }) })] });
    for (const [model, constraints] of [[constrained(), 'apply'], [constrained(), 'ignore'], [penalized, 'apply']] as const) {
      const t = new Trainer({ model, loss: 'categoricalCrossentropy', optimizer: sgd({ lr: 0.1 }), logger, constraints });
      await t.setup();
      const d = t.describe();
      if (model === penalized) {
        expect(d.penalties).to.deep.equal(['reg']);
        expect(d.constraints!.weights).to.deep.equal([]);
      } else {
        expect(d.constraints).to.deep.include({ applied: constraints === 'apply' });
        expect(d.constraints!.weights.map((w) => w.split(' ')[1])).to.deep.equal(['(MaxNorm)', '(NonNeg)', '(UnitNorm)']);
      }
      t.dispose();
    }
    expect(lines.join('\n')).to.match(/constraints \(projected after each update\): .*\(MaxNorm\)/).and.match(/constraints \(ignored: constraints 'ignore'\)/).and.match(/weight penalties \(in the loss\): reg/);
  });
});
