import * as semver from 'semver';
import { ErrorCodes, TapfitError } from '../errors';
import { CORE_VERSION } from '../version';
import type { TensorEntry, TensorRef } from './tensor-file';

export const CHECKPOINT_FORMAT = 'tapfit-checkpoint';
export const CHECKPOINT_FORMAT_VERSION = 1;

/** Where training stands: the next batch to run. */
export interface Position {
  epoch: number;
  batch: number;
}

/** manifest.json of a checkpoint folder; tensors live in tensors.bin. */
export interface Manifest {
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  coreVersion: string;
  createdAt: string;
  step: number;
  skipped: number;
  position: Position;
  seed: number;
  /** Every plugin registered when saving; those in `pluginState` must be present to resume. */
  plugins: string[];
  /** All model variables (trainable or not), in model order. */
  variables: { name: string; shape: number[]; ref: TensorRef }[];
  optimizer:
    | { kind: 'chain'; names: string[]; state: unknown }
    | { kind: 'optimizer'; className: string; weights: { name: string; ref: TensorRef }[] };
  pluginState: Record<string, { json?: unknown; tensors?: Record<string, TensorRef> }>;
  tensors: TensorEntry[];
}

/** Validates what a manifest.json holds before anything is loaded. */
export function checkManifest(m: unknown, where: string): Manifest {
  const bad = (why: string): never => {
    throw new TapfitError(ErrorCodes.CHECKPOINT, `${where}: ${why}`);
  };
  if (!m || typeof m !== 'object') bad('manifest.json is not an object; the checkpoint is corrupt.');
  const x = m as Partial<Manifest>;
  if (x.format !== CHECKPOINT_FORMAT) bad(`not a tapfit checkpoint (format ${JSON.stringify(x.format)}).`);
  if (x.formatVersion !== CHECKPOINT_FORMAT_VERSION) {
    bad(`checkpoint format version ${x.formatVersion} is not supported by @tapfit/core ${CORE_VERSION} (reads version ${CHECKPOINT_FORMAT_VERSION}).`);
  }
  if (typeof x.coreVersion !== 'string' || !semver.valid(x.coreVersion)) bad('the manifest has no valid coreVersion; the checkpoint is corrupt.');
  const compatible = semver.major(CORE_VERSION) === 0 ? semver.minor(x.coreVersion!) === semver.minor(CORE_VERSION) && semver.major(x.coreVersion!) === 0 : semver.major(x.coreVersion!) === semver.major(CORE_VERSION);
  if (!compatible) {
    bad(`checkpoint written by @tapfit/core ${x.coreVersion} cannot be resumed by the incompatible ${CORE_VERSION}. Resume it with @tapfit/core ${x.coreVersion}.`);
  }
  for (const key of ['step', 'skipped', 'seed'] as const) if (!Number.isInteger(x[key])) bad(`manifest field '${key}' is missing; the checkpoint is corrupt.`);
  if (!x.position || !Number.isInteger(x.position.epoch) || !Number.isInteger(x.position.batch)) bad("manifest field 'position' is missing; the checkpoint is corrupt.");
  if (!Array.isArray(x.variables) || !Array.isArray(x.tensors) || !Array.isArray(x.plugins) || !x.optimizer || !x.pluginState) {
    bad('the manifest lacks variables, tensors, plugins, optimizer or pluginState; the checkpoint is corrupt.');
  }
  return x as Manifest;
}
