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
