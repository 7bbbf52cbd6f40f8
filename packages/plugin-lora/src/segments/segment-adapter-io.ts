import * as tf from '@tensorflow/tfjs';
import type { TrainableModel } from '@tapfit/core';
import { type AdapterFile, checkModelKind, readAdapter, storedWeight, writeAdapterFiles } from '../common/adapter-file';
import type { AdapterSpec } from '../common/config';
import { stateError } from '../common/errors';
import { fingerprintMismatch } from '../common/fingerprint';
import { sampledVariables, segmentFingerprint, statisticVariables } from './segment-fingerprint';

/** What saving and loading read from a segment LoRA (a `LoraSegmentModel`). */
export interface SegmentLoraWeights {
  readonly base: TrainableModel;
  readonly adapter: string;
  readonly spec: AdapterSpec;
  readonly isMerged: boolean;
  /** Paths of the adapted variables, in the order of `adapters`. */
  readonly targets: string[];
  readonly adapters: readonly { readonly path: string; readonly A: tf.Variable; readonly B: tf.Variable }[];
  /** Variables trained in full (modulesToSave). */
  readonly saved: readonly { readonly path: string; readonly variable: tf.Variable }[];
  /** Whether a base variable was trainable before LoRA froze it (false: normalisation statistics). */
  wasTrainable(variable: tf.Variable): boolean;
}

/**
 * Write a segment LoRA's adapter in the layers format (adapter_config.json with
 * `modelKind: 'segments'`, adapter_weights.bin): A and B of each target as
 * '<path>/lora_A' and '<path>/lora_B', and modulesToSave variables and the variables
 * that were never trainable (normalisation statistics) under their paths.
 */
export async function saveSegmentAdapter(lora: SegmentLoraWeights, dir: string): Promise<AdapterFile> {
  if (lora.isMerged) throw stateError(`saveAdapter: the adapter is merged into the base weights; call unmerge() first so the base can be fingerprinted.`);
  const tensors: [string, tf.Tensor][] = [];
  for (const a of lora.adapters) tensors.push([`${a.path}/lora_A`, a.A], [`${a.path}/lora_B`, a.B]);
  for (const s of lora.saved) tensors.push([s.path, s.variable]);
  const modulesToSave = lora.saved.map((s) => s.path);
  const wasTrainable = (v: tf.Variable) => lora.wasTrainable(v);
  const statistics = statisticVariables(lora.base, modulesToSave, wasTrainable);
  for (const [p, v] of statistics) tensors.push([p, v]);
  const base = segmentFingerprint(lora.base, sampledVariables(lora.base, modulesToSave, wasTrainable));
  return writeAdapterFiles(dir, { modelKind: 'segments', adapter: lora.adapter, spec: { ...lora.spec }, targets: lora.targets, modulesToSave, statistics: [...statistics.keys()], base }, tensors);
}

/**
 * Load an adapter saved by `saveSegmentAdapter` into a segment LoRA with the same
 * targets, modulesToSave and spec, on the same base, and set the saved statistics.
 * Everything is checked before anything is written.
 */
export async function loadSegmentAdapter(lora: SegmentLoraWeights, dir: string): Promise<void> {
  const { file, tensors } = await readAdapter(dir);
  checkModelKind(file, dir, 'segments');
  if (lora.isMerged) throw stateError(`loadAdapter: the adapter is merged into the base weights; call unmerge() first.`);
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const saved = lora.saved.map((s) => s.path);
  if (!same(file.targets, lora.targets) || !same(file.modulesToSave, saved) || !same(file.spec, lora.spec)) {
    throw stateError(
      `loadAdapter: '${dir}' was saved with targets [${file.targets.join(', ')}], modulesToSave [${file.modulesToSave.join(', ')}] and spec ${JSON.stringify(file.spec)}; ` +
        `this LoRA has [${lora.targets.join(', ')}], [${saved.join(', ')}] and ${JSON.stringify(lora.spec)}. Use LoraSegmentModel.load(base, dir) to rebuild it as saved.`,
    );
  }
  // Sample what the file sampled (older files: the targets only).
  const mismatch = fingerprintMismatch(file.base, segmentFingerprint(lora.base, Object.keys(file.base.samples)));
  if (mismatch) throw stateError(`loadAdapter: cannot load '${dir}' onto this segment model: ${mismatch}.`);
  const writes: { variable: tf.Variable; data: Float32Array }[] = [];
  const add = (variable: tf.Variable, key: string) => writes.push({ variable, data: storedWeight(tensors, key, [...variable.shape], file) });
  for (const a of lora.adapters) {
    add(a.A, `${a.path}/lora_A`);
    add(a.B, `${a.path}/lora_B`);
  }
  for (const s of lora.saved) add(s.variable, s.path);
  const statistics = statisticVariables(lora.base, saved, (v) => lora.wasTrainable(v));
  for (const p of file.statistics ?? []) {
    const v = statistics.get(p);
    if (!v) throw stateError(`loadAdapter: the adapter stores statistic '${p}', but this segment model has no such non-trainable variable; the adapter was made for another base model.`);
    add(v, p);
  }
  for (const { variable, data } of writes) {
    const t = tf.tensor(data, variable.shape, 'float32');
    variable.assign(t);
    t.dispose();
  }
}
