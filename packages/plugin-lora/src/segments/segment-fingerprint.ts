import type * as tf from '@tensorflow/tfjs';
import type { TrainableModel } from '@tapfit/core';
import { type BaseFingerprint, makeFingerprint } from '../common/fingerprint';
import { segmentCatalog } from './segment-catalog';

/**
 * The fingerprint of a segment model's base: every base variable ('segment/name', shape)
 * in order, plus samples of the variables named in `samplePaths`.
 */
export function segmentFingerprint(model: TrainableModel, samplePaths: readonly string[]): BaseFingerprint {
  const entries = segmentCatalog(model);
  const layers = entries.map((e) => ({ path: e.path, className: 'Variable', shapes: [[...e.variable.shape]] }));
  return makeFingerprint(layers, new Map(entries.map((e) => [e.path, e.variable])), samplePaths);
}

/**
 * The variable paths an adapter file samples: every base variable except `modulesToSave`
 * (the file stores them, training changed them) and those that were never trainable
 * (normalisation statistics, which training may update).
 */
export function sampledVariables(model: TrainableModel, modulesToSave: readonly string[], wasTrainable: (v: tf.Variable) => boolean): string[] {
  const skip = new Set(modulesToSave);
  return segmentCatalog(model)
    .filter((e) => !skip.has(e.path) && wasTrainable(e.variable))
    .map((e) => e.path);
}

/**
 * The variables that were never trainable (normalisation statistics), outside
 * `modulesToSave`, by path: what an adapter file stores besides the adapters, so that a
 * load reproduces the trained model's outputs.
 */
export function statisticVariables(model: TrainableModel, modulesToSave: readonly string[], wasTrainable: (v: tf.Variable) => boolean): Map<string, tf.Variable> {
  const skip = new Set(modulesToSave);
  return new Map(
    segmentCatalog(model)
      // The file holds float32.
      .filter((e) => !skip.has(e.path) && !wasTrainable(e.variable) && e.variable.dtype === 'float32')
      .map((e) => [e.path, e.variable]),
  );
}
