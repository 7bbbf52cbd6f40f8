import { expect } from 'chai';
import { compileConsumer } from './public-declarations';
import { editorView } from './editor-view';

// Closed sets of names as a consumer's editor and compiler see them: loss names in the
// threaded executors are core's LossName (a typo does not compile), the pipeline plugin
// takes exactly one of stages / boundaries (ThreadedPipeline at most one), and optimizer
// and metric names are offered by completion while a name held in a `string`
// (model.compile's type) still compiles.

const header = `
import * as tf from '@tensorflow/tfjs';
import { sgd, Trainer, type MetricName, type OptimizerName } from '@tapfit/core';
import { pipeline, ThreadedPipeline } from '@tapfit/plugin-pipeline';
import { asyncTrain } from '@tapfit/plugin-brakes';
declare const model: tf.LayersModel;
declare const x: tf.Tensor;
declare const y: tf.Tensor;
`;

const compiled = `${header}
// Correct uses.
export const threaded = ThreadedPipeline.start({ model, stages: 2, loss: 'softmaxCrossEntropy', optimizer: { lr: 0.1, momentum: 0.9 } });
export const workers = asyncTrain({ model, data: { x, y }, loss: 'meanSquaredError', optimizer: sgd({ lr: 0.1 }), workers: 2, steps: 10 });
export const balanced = pipeline({ stages: 2, compensation: 'sc' });
export const explicit = pipeline({ boundaries: ['dense_2'] });
export const named = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: 'RMSProp', metrics: ['accuracy', 'mse'] });
// model.compile's types hold names as string: they still compile (an unknown one is refused when the trainer is built).
const compileArgs = { optimizer: 'adam' as string, metrics: ['accuracy'] as string[] };
export const ported = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: compileArgs.optimizer, metrics: compileArgs.metrics });
export const names: [OptimizerName, MetricName] = ['adamax', 'categoricalAccuracy'];

// Misuses.
// @ts-expect-error a misspelt loss name
export const typoThreaded = ThreadedPipeline.start({ model, stages: 2, loss: 'sofmaxCrossEntropy', optimizer: { lr: 0.1, momentum: 0.9 } });
// @ts-expect-error a misspelt loss name
export const typoWorkers = asyncTrain({ model, data: { x, y }, loss: 'mse ', optimizer: sgd({ lr: 0.1 }), workers: 2, steps: 10 });
// @ts-expect-error neither stages nor boundaries
export const neither = pipeline({});
// @ts-expect-error both stages and boundaries
export const both = pipeline({ stages: 2, boundaries: ['dense_2'] });
// @ts-expect-error both stages and boundaries (the threaded pipeline)
export const bothThreaded = ThreadedPipeline.start({ model, stages: 2, boundaries: ['dense_2'], loss: 'softmaxCrossEntropy', optimizer: { lr: 0.1, momentum: 0.9 } });
export const threadedDefault = ThreadedPipeline.start({ model, loss: 'softmaxCrossEntropy', optimizer: { lr: 0.1, momentum: 0.9 } });
export const threadedExplicit = ThreadedPipeline.start({ model, boundaries: ['dense_2'], loss: 'softmaxCrossEntropy', optimizer: { lr: 0.1, momentum: 0.9 } });
// @ts-expect-error not an optimizer name
export const wrongName: OptimizerName = 'adma';
// @ts-expect-error not a metric name
export const wrongMetric: MetricName = 'acuracy';
`;

const completing = `${header}
export const t = new Trainer({ model, loss: 'softmaxCrossEntropy', optimizer: /*|optimizer|*/'', metrics: [/*|metric|*/''] });
export const p = ThreadedPipeline.start({ model, stages: 2, loss: /*|loss|*/'', optimizer: { lr: 0.1, momentum: 0.9 } });
`;

describe('name options in a strict consumer project', function () {
  this.timeout(120_000);

  it('loss names of ThreadedPipeline and asyncTrain, the pipeline split, optimizer and metric names: misuses fail, correct uses compile', () => {
    expect(compileConsumer('name-option-types', compiled, {})).to.deep.equal([]);
  });

  it('an editor offers the optimizer, metric and loss names', () => {
    const view = editorView('name-option-completions', completing);
    try {
      expect(view.completions('optimizer')).to.include.members(['sgd', 'momentum', 'adam', 'adamax', 'rmsprop', 'adagrad', 'adadelta', 'RMSProp']);
      expect(view.completions('metric')).to.include.members(['accuracy', 'acc', 'crossentropy', 'mse', 'categoricalAccuracy', 'meanAbsoluteError']);
      expect(view.completions('loss')).to.include.members(['softmaxCrossEntropy', 'meanSquaredError', 'categoricalCrossentropy']);
    } finally {
      view.dispose();
    }
  });
});
