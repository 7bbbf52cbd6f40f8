import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { oneWriterPerFolder, syncFolder, TapfitError, writeFileDurably } from '@tapfit/core';
import type * as tf from '@tensorflow/tfjs';
import { adapterFileSchema, fieldPath, valueAt } from './adapter-schema';
import { type AdapterSpec, resolveSpec, shown } from './config';
import { adapterFileError, stateError } from './errors';
import type { BaseFingerprint } from './fingerprint';

// The adapter directory format shared by layers and segment models: a versioned JSON
// config and a little-endian float32 weights file.

export const ADAPTER_FORMAT = 'tapfit-lora-adapter';
export const ADAPTER_VERSION = 1;
export const CONFIG_FILE = 'adapter_config.json';
export const WEIGHTS_FILE = 'adapter_weights.bin';

export interface WeightEntry {
  name: string;
  shape: number[];
  dtype: 'float32';
  offset: number;
}

/** The versioned JSON written next to the weights. */
export interface AdapterFile {
  format: typeof ADAPTER_FORMAT;
  version: number;
  /** 'segments' for an adapter saved from a segment model (applyLoraToSegments); absent for layers models. */
  modelKind?: 'segments';
  adapter: string;
  spec: AdapterSpec;
  /** Paths of the adapted layers. */
  targets: string[];
  /** Paths of the layers trained in full, whose weights are saved too. */
  modulesToSave: string[];
  /**
   * Paths of the running statistics saved too (weights or variables that were not
   * trainable before LoRA, outside modulesToSave: BatchNorm's moving statistics,
   * OnlineNorm's); a load restores them. Absent in files written before they were saved.
   */
  statistics?: string[];
  base: BaseFingerprint;
  weights: WeightEntry[];
  weightsFile: string;
  weightsBytes: number;
  weightsSha256: string;
}

/** What an adapter file says besides its weights manifest. */
export type AdapterMeta = Pick<AdapterFile, 'adapter' | 'spec' | 'targets' | 'modulesToSave' | 'statistics' | 'base' | 'modelKind'>;

/**
 * Write `tensors` (float32, little-endian, in order) and the config describing them to
 * `dir`, so that a save that fails or is killed part-way leaves `dir` loadable: the
 * adapter it held before, or the new one. Each file is written to a temporary name and
 * renamed, and the config (which names the weights file and holds its sha256) is what
 * makes a weights file part of the adapter, so it is written last.
 */
export function writeAdapterFiles(dir: string, meta: AdapterMeta, tensors: readonly [string, tf.Tensor][]): Promise<AdapterFile> {
  // Two overlapping saves to one folder would pair one's config with the other's weights.
  return oneWriterPerFolder(dir, () => writeNow(dir, meta, tensors));
}

async function writeNow(dir: string, meta: AdapterMeta, tensors: readonly [string, tf.Tensor][]): Promise<AdapterFile> {
  const weights: WeightEntry[] = [];
  const chunks: Buffer[] = [];
  let offset = 0;
  for (const [n, t] of tensors) {
    const data = Buffer.from(((await t.data()) as Float32Array).slice().buffer);
    weights.push({ name: n, shape: t.shape, dtype: 'float32', offset });
    chunks.push(data);
    offset += data.byteLength;
  }
  const bin = Buffer.concat(chunks);
  const file: AdapterFile = {
    format: ADAPTER_FORMAT,
    version: ADAPTER_VERSION,
    ...(meta.modelKind ? { modelKind: meta.modelKind } : {}),
    adapter: meta.adapter,
    spec: meta.spec,
    targets: meta.targets,
    modulesToSave: meta.modulesToSave,
    ...(meta.statistics ? { statistics: meta.statistics } : {}),
    base: meta.base,
    weights,
    weightsFile: WEIGHTS_FILE,
    weightsBytes: bin.byteLength,
    weightsSha256: createHash('sha256').update(bin).digest('hex'),
  };
  try {
    await fs.mkdir(dir, { recursive: true });
  } catch (err) {
    throw adapterFileError(`could not create the adapter directory '${dir}': ${(err as Error).message}; save to a folder you can write to.`);
  }
  const config = path.join(dir, CONFIG_FILE);
  const json = (f: AdapterFile) => JSON.stringify(f, null, 2) + '\n';
  if ((await configuredWeights(dir)) === null) {
    // No adapter here to keep: the weights, then the config that makes them one.
    await writeAtomic(path.join(dir, WEIGHTS_FILE), bin);
    await writeAtomic(config, json(file));
    return file;
  }
  // Replacing an adapter. Writing adapter_weights.bin first would pair the old config with
  // the new weights until the new config lands (a torn pair, refused by its checksum). So
  // the new weights go to a staged name, a config naming them switches to the new adapter
  // (one rename), and only then is adapter_weights.bin replaced and the config pointed back.
  const staged = `${WEIGHTS_FILE}.${process.pid}.${randomBytes(4).toString('hex')}.staged`;
  const stagedPath = path.join(dir, staged);
  try {
    await writeFileDurably(stagedPath, bin);
    await writeAtomic(config, json({ ...file, weightsFile: staged }));
  } catch (err) {
    // Keep the staged weights if the switch happened (a failure after the rename).
    if ((await configuredWeights(dir)) !== staged) await fs.rm(stagedPath, { force: true }).catch(() => undefined);
    throw err instanceof TapfitError ? err : adapterFileError(`could not write '${stagedPath}': ${(err as Error).message}`);
  }
  await writeAtomic(path.join(dir, WEIGHTS_FILE), bin);
  await writeAtomic(config, json(file));
  // The save is complete, and the config names adapter_weights.bin: staged files (this
  // save's, or ones an interrupted save left) are clutter. Failing to remove one fails nothing.
  const names = await fs.readdir(dir).catch(() => [staged]);
  for (const leftover of names.filter((f) => STAGED.test(f))) await fs.rm(path.join(dir, leftover), { force: true }).catch(() => undefined);
  return file;
}

/** Names of staged weights files (writeAdapterFiles): the only files a save removes. */
const STAGED = /^adapter_weights\.bin\.\d+\.[0-9a-f]{8}\.staged$/;

/** The weights file the adapter config in `dir` names, or null when `dir` holds no readable adapter config. */
async function configuredWeights(dir: string): Promise<string | null> {
  try {
    const file = JSON.parse(withoutBom(await fs.readFile(path.join(dir, CONFIG_FILE), 'utf8'))) as Partial<AdapterFile>;
    return file.format === ADAPTER_FORMAT && typeof file.weightsFile === 'string' ? file.weightsFile : null;
  } catch {
    return null;
  }
}

/** The text without a leading byte-order mark, which an editor may save and JSON.parse refuses. */
const withoutBom = (text: string): string => text.replace(/^\uFEFF/, '');

/** Read and check an adapter directory (format, version, checksum); no model needed. */
export async function readAdapter(dir: string): Promise<{ file: AdapterFile; tensors: Map<string, Float32Array> }> {
  let text: string;
  try {
    text = await fs.readFile(path.join(dir, CONFIG_FILE), 'utf8');
  } catch (err) {
    throw adapterFileError(`no adapter at '${dir}': cannot read ${CONFIG_FILE} (${(err as Error).message}).`);
  }
  let file: AdapterFile;
  try {
    file = JSON.parse(withoutBom(text)) as AdapterFile;
  } catch (err) {
    throw adapterFileError(`'${dir}/${CONFIG_FILE}' is not valid JSON (${(err as Error).message}); the file is damaged: save the adapter again.`);
  }
  if (!file || typeof file !== 'object') throw adapterFileError(`'${dir}/${CONFIG_FILE}' is not a tapfit LoRA adapter (it holds ${shown(file)}).`);
  if (file.format !== ADAPTER_FORMAT) throw adapterFileError(`'${dir}/${CONFIG_FILE}' is not a tapfit LoRA adapter (format '${String(file.format)}').`);
  if (file.version !== ADAPTER_VERSION) throw adapterFileError(`adapter '${dir}' has format version ${file.version}; this @tapfit/plugin-lora reads version ${ADAPTER_VERSION}.`);
  checkConfig(file, dir);
  let bin: Buffer;
  try {
    bin = await fs.readFile(path.join(dir, file.weightsFile));
  } catch (err) {
    throw adapterFileError(`adapter '${dir}': cannot read ${file.weightsFile} (${(err as Error).message}); copy it along with ${CONFIG_FILE} or save the adapter again.`);
  }
  if (bin.byteLength !== file.weightsBytes || createHash('sha256').update(bin).digest('hex') !== file.weightsSha256) {
    throw adapterFileError(`adapter '${dir}': ${file.weightsFile} does not match the checksum in ${CONFIG_FILE} (truncated or from another save).`);
  }
  const tensors = new Map<string, Float32Array>();
  for (const w of file.weights) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    tensors.set(w.name, new Float32Array(bin.buffer.slice(bin.byteOffset + w.offset, bin.byteOffset + w.offset + 4 * n)));
  }
  return { file, tensors };
}

/**
 * The config's fields, before any is used (adapterFileSchema), then what ties them
 * together: the weights table tiles the weights file in order, as writeNow writes it (so
 * an edited offset, shape or name cannot read other bytes), the weights file is one a
 * save writes into `dir`, and the base samples cover every target (a load compares them).
 */
function checkConfig(file: AdapterFile, dir: string): void {
  const damaged = (why: string): never => {
    throw adapterFileError(`'${dir}/${CONFIG_FILE}': ${why}; the file is damaged or was edited: save the adapter again.`);
  };
  const parsed = adapterFileSchema.safeParse(file);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const value = valueAt(file, issue.path);
    const field = `field '${fieldPath(issue.path)}'`;
    damaged(value === undefined ? `${field} is missing` : `${field} is malformed: ${issue.message.replace(/^Invalid (?:input|option): /, '')} (it holds ${shown(value)})`);
  }
  resolveSpec(file.spec);
  let offset = 0;
  const names = new Set<string>();
  file.weights.forEach((w, i) => {
    if (w.offset !== offset) damaged(`field 'weights[${i}].offset' is ${w.offset}, but the weights before it end at byte ${offset}`);
    if (names.has(w.name)) damaged(`field 'weights[${i}].name' repeats '${w.name}'`);
    names.add(w.name);
    offset += 4 * w.shape.reduce((a, b) => a * b, 1);
  });
  if (offset !== file.weightsBytes) damaged(`the weights table describes ${offset} bytes but field 'weightsBytes' is ${file.weightsBytes}`);
  if (file.weightsFile !== WEIGHTS_FILE && !STAGED.test(file.weightsFile)) damaged(`field 'weightsFile' is ${shown(file.weightsFile)}, not ${WEIGHTS_FILE} or a staged copy of it`);
  const sampled = Object.keys(file.base.samples);
  const unsampled = file.targets.filter((t) => !sampled.some((k) => k === t || k.startsWith(`${t}/`)));
  if (unsampled.length > 0) damaged(`field 'base.samples' holds no values of target ${unsampled.map((t) => `'${t}'`).join(', ')}, so the base model cannot be checked`);
}

/** Refuse an adapter file that was saved from the other kind of model. */
export function checkModelKind(file: AdapterFile, dir: string, want: 'layers' | 'segments'): void {
  const have = file.modelKind ?? 'layers';
  if (have === want) return;
  throw stateError(
    have === 'segments'
      ? `'${dir}' holds an adapter saved from a segment model; load it with LoraSegmentModel.load(base, dir) or loadAdapter(dir) on a segment LoRA.`
      : `'${dir}' holds an adapter saved from a tfjs-layers model; load it with LoraModel.load(base, dir).`,
  );
}

export function storedWeight(tensors: Map<string, Float32Array>, key: string, shape: number[], file: AdapterFile): Float32Array {
  const data = tensors.get(key);
  const entry = file.weights.find((w) => w.name === key);
  if (!data || !entry) throw stateError(`loadAdapter: the adapter file has no weight '${key}'.`);
  if (JSON.stringify(entry.shape) !== JSON.stringify(shape)) {
    throw stateError(`loadAdapter: weight '${key}' has shape [${entry.shape}] in the file but [${shape}] in this model; the adapter was made for another base model or rank.`);
  }
  return data;
}

/** Replaces `file` in one rename, durably (as core's checkpoints: data and rename fsynced), so a crash leaves the old or the new file. */
async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFileDurably(tmp, data);
    await fs.rename(tmp, file);
    await syncFolder(path.dirname(file));
  } catch (err) {
    await fs.rm(tmp, { force: true }).catch(() => undefined); // the write's error is the one to report
    throw adapterFileError(`could not write '${file}': ${(err as Error).message}`);
  }
}

