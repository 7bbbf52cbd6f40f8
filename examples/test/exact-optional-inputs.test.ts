import { expect } from 'chai';
import { compileConsumer } from './public-declarations';

// The input positions option-types-undefined.test.ts does not reach (inline parameter types
// of methods, an interface users implement) take an explicit undefined too, so a user with
// `exactOptionalPropertyTypes` can forward `cfg.x: T | undefined`; and evaluate(data) takes
// evaluate(x, y)'s options, `verbose` included, as its run-time schema does.

const code = `
import * as tf from '@tensorflow/tfjs';
import { tensorData, Trainer, type Segment } from '@tapfit/core';
import { revsilo } from '@tapfit/plugin-revsilo';
import type { ThreadedPipeline } from '@tapfit/plugin-pipeline';
interface Config { batchSize?: number; print?: boolean; tolerance?: number; microBatch?: number; why?: string; verbose?: 0 | 1 }
declare const cfg: Config;
declare const trainer: Trainer;
declare const pipe: ThreadedPipeline;
declare const x: tf.Tensor;
declare const y: tf.Tensor;
export async function run() {
  const data = tensorData(x, y);
  const scores = await trainer.evaluate(data, { batchSize: cfg.batchSize, verbose: cfg.verbose });
  const quiet = await trainer.evaluate(data, { verbose: 0 });
  const same = trainer.evaluate(x, y, { batchSize: cfg.batchSize });
  const description = trainer.describe({ print: cfg.print });
  const plugin = revsilo({ checkReconstruction: { tolerance: cfg.tolerance } });
  const losses = await pipe.train(x, y, { microBatch: cfg.microBatch });
  const segment: Segment = { name: 's', params: [], forward: (xs) => xs, notReplayable: cfg.why };
  // @ts-expect-error evaluate(data) checks its option names as evaluate(x, y) does
  await trainer.evaluate(data, { batchsize: 4 });
  return [scores, quiet, same, description, plugin, losses, segment];
}
`;

describe('optional inputs of methods and implemented interfaces under exactOptionalPropertyTypes', function () {
  this.timeout(120_000);
  it('evaluate(data, { verbose, batchSize: undefined }), describe, revsilo tolerance, ThreadedPipeline.train and Segment.notReplayable compile', () => {
    expect(compileConsumer('exact-optional-inputs', code, { exactOptionalPropertyTypes: true })).to.deep.equal([]);
  });
});
