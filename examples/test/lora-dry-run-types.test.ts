import { expect } from 'chai';
import { compileConsumer } from './public-declarations';

// applyLora / applyLoraToSegments with a dryRun known only at run time (a CLI flag, a config
// typed with the exported LoraOptions & DryRunOptions) compile and return the union; the
// literal forms keep their precise result types.

const code = `
import * as tf from '@tensorflow/tfjs';
import type { TrainableModel } from '@tapfit/core';
import { applyLora, applyLoraToSegments, LoraModel, type DryRunOptions, type LoraOptions, type LoraPlan, type LoraSegmentModel } from '@tapfit/plugin-lora';
declare const base: tf.LayersModel;
declare const segments: TrainableModel;
const dry: boolean = process.argv.includes('--dry-run');
const opts: LoraOptions & DryRunOptions = { targets: 'all-linear', rank: 8 };

export const either: LoraModel | LoraPlan = applyLora(base, { targets: 'all-linear', rank: 8, dryRun: dry });
export const fromConfig: LoraModel | LoraPlan = applyLora(base, opts);
export const segmentsEither: LoraSegmentModel | LoraPlan = applyLoraToSegments(segments, { ...opts, dryRun: dry });
export const narrowed = either instanceof LoraModel ? either.model : either.adapted;

// The literal forms are precise.
export const plan: LoraPlan = applyLora(base, { ...opts, dryRun: true });
export const model: LoraModel = applyLora(base, { targets: 'all-linear', rank: 8 });
export const segmentModel: LoraSegmentModel = applyLoraToSegments(segments, { targets: 'all-linear', rank: 8, dryRun: false });
// @ts-expect-error a boolean dryRun may give a plan: not a LoraModel
export const notSure: LoraModel = applyLora(base, opts);
// @ts-expect-error dryRun is a boolean, not a string
export const text = applyLora(base, { targets: 'all-linear', rank: 8, dryRun: 'false' });
`;

describe('LoRA dryRun types in a strict consumer project', function () {
  this.timeout(120_000);
  it('a boolean dryRun and a LoraOptions & DryRunOptions variable compile, returning LoraModel | LoraPlan', () => {
    expect(compileConsumer('lora-dry-run-types', code, {})).to.deep.equal([]);
  });
});
