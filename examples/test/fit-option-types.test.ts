import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { compileSnippets, repoRoot, type Snippet } from './doc-snippets';

// fit's options as a strict TypeScript user sees them: model.fit's inline callbacks compile
// without annotations (their parameters typed, not `any`), and values fit refuses at run
// time do not type-check.

const header = [
  "import * as tf from '@tensorflow/tfjs';",
  "import { sgd, tensorData, Trainer, type FitOptions } from '@tapfit/core';",
  'declare const model: tf.Sequential;',
  'declare const x: tf.Tensor;',
  'declare const y: tf.Tensor;',
  'declare const trainer: Trainer;',
  'type IsAny<T> = 0 extends 1 & T ? true : false;',
].join('\n');

const accepted = `${header}
// model.fit's own forms, passed unchanged to trainer.fit.
const options = { epochs: 1, callbacks: { onEpochEnd: (epoch: number, logs?: tf.Logs) => void [epoch, logs] } };
export const viaTfjs = model.fit(x, y, options);
export const same = trainer.fit(x, y, options);
export const inline = trainer.fit(x, y, {
  callbacks: {
    onTrainBegin: (logs) => logs?.loss,
    onEpochEnd: (epoch, logs) => { const e: number = epoch; const l: number | undefined = logs?.loss; return [e, l]; },
    onBatchEnd: async (batch, logs) => void [batch.toFixed(), logs],
  },
  validationData: [x, y],
});
class Printer extends tf.Callback {
  override async onEpochEnd(epoch: number): Promise<void> { void epoch; }
}
export const classes = trainer.fit(tensorData(x, y), {
  callbacks: [tf.callbacks.earlyStopping({ patience: 2 }), new Printer(), new tf.CustomCallback({ onEpochEnd: (e, logs) => void [e, logs] }), { onEpochBegin: (e) => void e }],
  validationData: tensorData(x, y),
});
export const single = trainer.fit(x, y, { callbacks: tf.callbacks.earlyStopping(), validationData: [[[1, 2]], [0]] as const });
// Arguments kept in a variable typed as tfjs's own (the README's "replace model.fit with trainer.fit").
const fitArgs: tf.ModelFitArgs = { epochs: 5, batchSize: 32, validationSplit: 0.1, classWeight: { 0: 1, 1: 5 }, callbacks: { onEpochEnd: async (e, logs) => void [e, logs?.loss] } };
export const typed = trainer.fit(x, y, fitArgs);
declare const anyFitArgs: tf.ModelFitArgs;
export const typedAny = trainer.fit(x, y, anyFitArgs);
declare const ds: tf.data.Dataset<{ xs: tf.Tensor; ys: tf.Tensor }>;
const datasetArgs: tf.ModelFitDatasetArgs<tf.TensorContainer> = { epochs: 2, validationData: ds, classWeight: { 0: 1, 1: 5 } };
export const typedDataset = trainer.fitDataset(ds, datasetArgs);
declare const anyDatasetArgs: tf.ModelFitDatasetArgs<{ xs: tf.Tensor; ys: tf.Tensor }>;
export const typedDatasetAny = trainer.fitDataset(ds, anyDatasetArgs);
const notAny: [IsAny<FitOptions['callbacks']>, IsAny<FitOptions['validationData']>, IsAny<FitOptions['classWeight']>] = [false, false, false];
export const used = [notAny, sgd];
`;

// Each of these must fail to compile (fit refuses them at run time).
const refused: Record<string, string> = {
  'callbacks: 42': 'export const p = trainer.fit(x, y, { callbacks: 42 });',
  'callbacks: a string': "export const p = trainer.fit(x, y, { callbacks: 'onEpochEnd' });",
  'a handler with a wrong parameter type': 'export const p = trainer.fit(x, y, { callbacks: { onEpochEnd: (epoch: string) => epoch } });',
  "validationData: 'not a dataset'": "export const p = trainer.fit(x, y, { validationData: 'not a dataset' });",
  'validationData: [x] alone': 'export const p = trainer.fit(x, y, { validationData: [x] });',
  "classWeight: 'balanced'": "export const p = trainer.fit(x, y, { classWeight: 'balanced' });",
  'classWeight: a string weight': "export const p = trainer.fit(x, y, { classWeight: { 0: '1' } });",
};

describe("fit options' types in a strict consumer project", function () {
  this.timeout(120_000);
  it('model.fit-style callbacks and validationData, and tf.ModelFitArgs / tf.ModelFitDatasetArgs variables, compile with typed parameters; refused values do not', () => {
    const snippets: Snippet[] = [
      { file: 'accepted.ts', line: 1, code: accepted, run: false },
      ...Object.entries(refused).map(([what, line]) => ({ file: what, line: 1, code: `${header}\n${line}\nexport const u = sgd;\n`, run: false })),
    ];
    const workDir = path.join(repoRoot, 'examples', '.fit-option-types');
    try {
      const { errors } = compileSnippets(snippets, workDir);
      expect(errors.filter((e) => e.startsWith('accepted.ts:')), 'accepted.ts').to.deep.equal([]);
      for (const what of Object.keys(refused)) expect(errors.filter((e) => e.startsWith(`${what}:`)), what).to.have.length.greaterThan(0);
    } finally {
      fs.rmSync(workDir, { recursive: true, force: true });
    }
  });
});
