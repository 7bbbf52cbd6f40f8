import { expect } from 'chai';
import { editorView } from './editor-view';

// What an editor shows on hover over the options of the main methods and the hooks a plugin
// taps: each has its documentation (fit's and the inference options are written out as
// interfaces, since `z.input` of a schema drops the comments on its keys).

const FIT_OPTIONS = ['epochs', 'batchSize', 'shuffle', 'validationData', 'validationSplit', 'callbacks', 'verbose', 'initialEpoch', 'classWeight', 'batchesPerEpoch', 'validationBatches'];
const TRAINER_OPTIONS = ['model', 'loss', 'optimizer', 'plugins', 'metrics', 'nonFinite', 'constraints', 'seed', 'logger', 'memoryBudget'];
const HOOKS = ['setup', 'planMemory', 'stepTransforms', 'fitStart', 'epochStart', 'batchStart', 'forward', 'backward', 'batchEnd', 'evaluateStart', 'evaluateEnd', 'epochEnd', 'fitEnd'];

const sample: Record<string, string> = {
  model: 'model', loss: "'softmaxCrossEntropy'", optimizer: "'sgd'", plugins: '[plugin]', metrics: "['accuracy']", nonFinite: "'skip'",
  constraints: "'apply'", seed: '1', logger: 'new SilentLogger()', memoryBudget: 'undefined',
  epochs: '1', batchSize: '4', shuffle: 'true', validationData: '[x, y]', validationSplit: 'undefined', callbacks: '{ onEpochEnd: () => undefined }',
  verbose: '0', initialEpoch: '0', classWeight: '{ 0: 1 }', batchesPerEpoch: 'undefined', validationBatches: 'undefined',
};
const entries = (keys: string[], prefix: string) => keys.map((k) => `/*|${prefix}${k}|*/${k}: ${sample[k]}`).join(', ');

const code = `
import * as tf from '@tensorflow/tfjs';
import { SilentLogger, tensorData, Trainer, type TapfitPlugin } from '@tapfit/core';
declare const model: tf.LayersModel;
declare const x: tf.Tensor;
declare const y: tf.Tensor;
const plugin: TapfitPlugin = {
  name: 'p',
  core: '*',
  apply(api) {
${HOOKS.map((h) => `    api.hooks./*|hook-${h}|*/${h}.tap('p', (v: never) => v);`).join('\n')}
  },
};
export async function run() {
  const trainer = new Trainer({ ${entries(TRAINER_OPTIONS, 'trainer-')} });
  await trainer.fit(x, y, { ${entries(FIT_OPTIONS, 'fit-')} });
  const p = trainer.predict(x, { /*|predict-batchSize|*/batchSize: 4, /*|predict-verbose|*/verbose: 0 });
  const e = await trainer.evaluate(tensorData(x, y), { /*|evaluate-batchSize|*/batchSize: 4, /*|evaluate-verbose|*/verbose: 0 });
  return [p, e];
}
`;

describe("hover documentation in a consumer's editor", function () {
  this.timeout(120_000);
  it('every Trainer, fit, predict and evaluate option and every hook shows its documentation', () => {
    const view = editorView('hover-docs', code);
    try {
      const markers = [
        ...TRAINER_OPTIONS.map((k) => `trainer-${k}`),
        ...FIT_OPTIONS.map((k) => `fit-${k}`),
        'predict-batchSize', 'predict-verbose', 'evaluate-batchSize', 'evaluate-verbose',
        ...HOOKS.map((h) => `hook-${h}`),
      ];
      const undocumented = markers.filter((m) => view.hoverDoc(m).trim() === '');
      expect(undocumented).to.deep.equal([]);
      expect(view.hoverDoc('hook-backward')).to.match(/maps the gradients/);
      expect(view.hoverDoc('fit-epochs')).to.match(/default 1/);
    } finally {
      view.dispose();
    }
  });
});
