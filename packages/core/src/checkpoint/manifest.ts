import * as semver from 'semver';
import { ErrorCodes, TapfitError } from '../errors';
import { CORE_VERSION } from '../version';
import { fieldPath, manifestSchema, shown } from './manifest-schema';
import type { TensorEntry, TensorRef } from './tensor-file';

export const CHECKPOINT_FORMAT = 'tapfit-checkpoint';
/** 2: a SHA-256 per tensor, a black-box optimizer's own variables. Version 1 still loads, unverified. */
export const CHECKPOINT_FORMAT_VERSION = 2;
const READABLE_VERSIONS = [1, 2];

/** Where training stands: the next batch to run. */
export interface Position {
  epoch: number;
  batch: number;
  /**
   * Mid-epoch only (batch > 0): how that epoch was batched, because `batch` counts batches
   * of this size in this order, and its loss and metric sums so far, so that the epoch's
   * logged means cover all of it when it is continued.
   */
  epochSoFar?: EpochSoFar;
}

/** The part of an epoch run before a stop (see Position). */
export interface EpochSoFar {
  batchSize: number;
  shuffle: boolean;
  /** Names of the summed values: 'loss', then the metrics. */
  names: string[];
  /** Per name, the sum over batches of (batch mean x batch size), float32 values (null: not finite, as JSON writes NaN). */
  sums: (number | null)[];
  samples: number;
  /** Samples in the data the epoch was drawn from (its shuffle is of that many); absent for data of unknown size, or an older checkpoint. */
  dataSize?: number;
  /**
   * Under batchesPerEpoch: the batches of the data the stopped fit had trained on since it
   * opened it (the data is read on across epochs), which the fit that continues the epoch
   * skips. Absent without batchesPerEpoch, or in an older checkpoint (the data then restarts).
   */
  carriedRead?: number;
}

/** manifest.json of a checkpoint folder; tensors live in tensors.bin. */
export interface Manifest {
  format: typeof CHECKPOINT_FORMAT;
  formatVersion: number;
  coreVersion: string;
  createdAt: string;
  step: number;
  skipped: number;
  /** trainOnBatch calls so far: the `batch` its hooks see next. Absent in checkpoints written before it was saved (read as 0). */
  trainOnBatchCalls?: number;
  position: Position;
  seed: number;
  /** Every plugin registered when saving; those in `pluginState` must be present to resume. */
  plugins: string[];
  /** All model variables (trainable or not), in model order. */
  variables: { name: string; shape: number[]; ref: TensorRef }[];
  optimizer:
    | {
        kind: 'chain';
        names: string[];
        /**
         * Member name -> the plugins that supplied or replaced it (in tap order); the
         * optimizer's own members are not listed. A resume compares it before the state, to
         * name a plugin added or removed that replaced a member keeping its name. Absent in
         * checkpoints written before it existed (optional: those still load, unchecked).
         */
        suppliedBy?: Record<string, string[]>;
        state: unknown;
      }
    | {
        kind: 'optimizer';
        className: string;
        weights: { name: string; ref: TensorRef }[];
        /** Variables the optimizer keeps outside getWeights() (Adam's beta powers), by field name. */
        fields?: { name: string; ref: TensorRef }[];
      };
  pluginState: Record<string, { json?: unknown; tensors?: Record<string, TensorRef> }>;
  tensors: TensorEntry[];
}

/**
 * Validates what a manifest.json holds before anything is loaded: what it is (format,
 * version, the core that wrote it), then every field's type (manifestSchema), then what
 * ties fields together. Each refusal names manifest.json and the field.
 */
export function checkManifest(m: unknown, where: string): Manifest {
  const bad = (why: string): never => {
    throw new TapfitError(ErrorCodes.CHECKPOINT, `${where}: ${why}`);
  };
  const corrupt = (why: string): never => bad(`${why}; the checkpoint is corrupt (damaged or edited). ${OLDER}`);
  if (!m || typeof m !== 'object' || Array.isArray(m)) corrupt('manifest.json is not an object');
  const x = m as Partial<Manifest>;
  if (x.format !== CHECKPOINT_FORMAT) bad(`not a tapfit checkpoint (format ${JSON.stringify(x.format)}).`);
  if (typeof x.formatVersion !== 'number') corrupt(`manifest.json field 'formatVersion' is malformed (it holds ${shown(x.formatVersion)})`);
  if (!READABLE_VERSIONS.includes(x.formatVersion!)) {
    bad(`checkpoint format version ${x.formatVersion} is not supported by @tapfit/core ${CORE_VERSION} (reads versions ${READABLE_VERSIONS.join(' and ')}).`);
  }
  if (typeof x.coreVersion !== 'string' || !semver.valid(x.coreVersion)) corrupt(`manifest.json field 'coreVersion' is malformed (it holds ${shown(x.coreVersion)})`);
  const compatible = semver.major(CORE_VERSION) === 0 ? semver.minor(x.coreVersion!) === semver.minor(CORE_VERSION) && semver.major(x.coreVersion!) === 0 : semver.major(x.coreVersion!) === semver.major(CORE_VERSION);
  if (!compatible) {
    bad(`checkpoint written by @tapfit/core ${x.coreVersion} cannot be resumed by the incompatible ${CORE_VERSION}. Resume it with @tapfit/core ${x.coreVersion}.`);
  }
  const parsed = manifestSchema.safeParse(m);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const value = valueAt(m, issue.path);
    const field = `manifest.json field '${fieldPath(issue.path)}'`;
    corrupt(value === undefined ? `${field} is missing` : `${field} is malformed: ${issue.message.replace(/^Invalid (?:input|option): /, '')} (it holds ${shown(value)})`);
  }
  if (x.formatVersion! >= 2 && !x.tensors!.every((e) => typeof e.sha256 === 'string')) corrupt('a tensor entry has no checksum');
  return x as Manifest;
}

const OLDER = 'Resume from an older checkpoint (write its step-* folder name into LATEST) or start training again.';

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) value = value !== null && typeof value === 'object' ? (value as Record<PropertyKey, unknown>)[key] : undefined;
  return value;
}

/** What each tensor of a checkpoint is, for error messages: "model variable 'dense/kernel'", ... */
export function tensorLabels(m: Manifest): string[] {
  const labels: string[] = [];
  const visit = (value: unknown, what: string, at: string[] = []): void => {
    if (!value || typeof value !== 'object') return;
    if (typeof (value as TensorRef).$tensor === 'number') labels[(value as TensorRef).$tensor] = at.length ? `${what} '${at.join('.')}'` : what;
    else for (const [k, v] of Object.entries(value)) visit(v, what, [...at, k]);
  };
  for (const v of m.variables) visit(v.ref, `model variable '${v.name}'`);
  const o = m.optimizer;
  if (o.kind === 'chain') visit(o.state, 'optimizer state');
  else {
    for (const w of o.weights) visit(w.ref, `${o.className} optimizer weight '${w.name}'`);
    for (const f of o.fields ?? []) visit(f.ref, `${o.className} optimizer variable '${f.name}'`);
  }
  for (const [plugin, s] of Object.entries(m.pluginState)) visit(s.tensors, `plugin '${plugin}' state tensor`);
  return labels;
}
