import { createHash, randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { type AdapterSpec, checkAdapterName, resolveSpec, stateError } from '../shared/config';
import { catalog } from './catalog';
import { LoraLayer } from './lora-layer';
import { requireLoraLayers, setActiveAdapter } from './adapters';
import { type BaseFingerprint, fingerprint, fingerprintMismatch } from '../shared/fingerprint';
import { localName } from './rebuild';

export const ADAPTER_FORMAT = 'tapfit-lora-adapter';
export const ADAPTER_VERSION = 1;
export const CONFIG_FILE = 'adapter_config.json';
export const WEIGHTS_FILE = 'adapter_weights.bin';

interface WeightEntry {
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
  base: BaseFingerprint;
  weights: WeightEntry[];
  weightsFile: string;
  weightsBytes: number;
  weightsSha256: string;
}

function ioError(message: string): TapfitError {
  return new TapfitError(ErrorCodes.CHECKPOINT, `lora: ${message}`);
}

/** Non-LoRA layers left trainable by applyLora: the modulesToSave. */
function savedModules(model: tf.LayersModel): { path: string; layer: tf.layers.Layer }[] {
  return catalog(model)
    .filter((e) => !(e.layer instanceof LoraLayer) && e.layer.trainable && e.layer.weights.length > 0)
    .map((e) => ({ path: e.path, layer: e.layer }));
}

/**
 * Write adapter `adapter` (default: the active one) of a LoRA model to directory `dir`:
 * adapter_config.json (versioned; rank, alpha, targets, base-model fingerprint) and
 * adapter_weights.bin (float32, little-endian). Each file is written to a temporary
 * name and renamed; the config goes last and holds the weights' sha256, so a torn
 * pair is detected on load.
 */
export async function saveAdapter(model: tf.LayersModel, dir: string, opts: { adapter?: string } = {}): Promise<AdapterFile> {
  const layers = requireLoraLayers(model, 'saveAdapter');
  if (layers.some((l) => l.isMerged)) throw stateError(`saveAdapter: an adapter is merged into the base kernels; call unmerge() first so the base can be fingerprinted.`);
  const name = opts.adapter ?? layers.find((l) => l.activeAdapter !== null)?.activeAdapter;
  if (!name) throw stateError(`saveAdapter: no adapter is active; pass { adapter: name }.`);
  const entries = catalog(model).filter((e) => e.layer instanceof LoraLayer && (e.layer as LoraLayer).hasAdapter(name));
  if (entries.length === 0) throw stateError(`saveAdapter: no layer has an adapter named '${name}'.`);
  const spec = (entries[0].layer as LoraLayer).spec(name);
  const modules = savedModules(model);

  const tensors: [string, tf.Tensor][] = [];
  for (const e of entries) {
    const { A, B } = (e.layer as LoraLayer).adapterWeights(name);
    tensors.push([`${e.path}/lora_A`, A.read()], [`${e.path}/lora_B`, B.read()]);
  }
  for (const m of modules) for (const w of m.layer.weights) tensors.push([`${m.path}/${localName(w)}`, w.read()]);

  const targets = entries.map((e) => e.path);
  return writeAdapterFiles(dir, { adapter: name, spec: { ...spec }, targets, modulesToSave: modules.map((m) => m.path), base: fingerprint(model, targets) }, tensors);
}

/** What an adapter file says besides its weights manifest. */
export type AdapterMeta = Pick<AdapterFile, 'adapter' | 'spec' | 'targets' | 'modulesToSave' | 'base' | 'modelKind'>;

/**
 * Write `tensors` (float32, little-endian, in order) and the config describing them to
 * `dir`: the weights first, then the config holding their sha256, each atomically.
 */
export async function writeAdapterFiles(dir: string, meta: AdapterMeta, tensors: readonly [string, tf.Tensor][]): Promise<AdapterFile> {
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
    base: meta.base,
    weights,
    weightsFile: WEIGHTS_FILE,
    weightsBytes: bin.byteLength,
    weightsSha256: createHash('sha256').update(bin).digest('hex'),
  };
  await fs.mkdir(dir, { recursive: true });
  await writeAtomic(path.join(dir, WEIGHTS_FILE), bin);
  await writeAtomic(path.join(dir, CONFIG_FILE), JSON.stringify(file, null, 2) + '\n');
  return file;
}

/** Read and check an adapter directory (format, version, checksum); no model needed. */
export async function readAdapter(dir: string): Promise<{ file: AdapterFile; tensors: Map<string, Float32Array> }> {
  let text: string;
  try {
    text = await fs.readFile(path.join(dir, CONFIG_FILE), 'utf8');
  } catch (err) {
    throw ioError(`no adapter at '${dir}': cannot read ${CONFIG_FILE} (${(err as Error).message}).`);
  }
  const file = JSON.parse(text) as AdapterFile;
  if (file.format !== ADAPTER_FORMAT) throw ioError(`'${dir}/${CONFIG_FILE}' is not a tapfit LoRA adapter (format '${String(file.format)}').`);
  if (file.version !== ADAPTER_VERSION) throw ioError(`adapter '${dir}' has format version ${file.version}; this @tapfit/plugin-lora reads version ${ADAPTER_VERSION}.`);
  resolveSpec(file.spec);
  checkAdapterName(file.adapter);
  const bin = await fs.readFile(path.join(dir, file.weightsFile));
  if (bin.byteLength !== file.weightsBytes || createHash('sha256').update(bin).digest('hex') !== file.weightsSha256) {
    throw ioError(`adapter '${dir}': ${file.weightsFile} does not match the checksum in ${CONFIG_FILE} (truncated or from another save).`);
  }
  const tensors = new Map<string, Float32Array>();
  for (const w of file.weights) {
    const n = w.shape.reduce((a, b) => a * b, 1);
    if (w.offset + 4 * n > bin.byteLength) throw ioError(`adapter '${dir}': weight '${w.name}' runs past the end of ${file.weightsFile}.`);
    tensors.set(w.name, new Float32Array(bin.buffer.slice(bin.byteOffset + w.offset, bin.byteOffset + w.offset + 4 * n)));
  }
  return { file, tensors };
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

export interface LoadAdapterOptions {
  /** Name to load the adapter under (default: the name it was saved with). */
  name?: string;
  /** Make it the active adapter (default true). */
  activate?: boolean;
}

/**
 * Load an adapter saved by `saveAdapter` into a LoRA model built on the same base.
 * Creates the adapter (or overwrites an existing one with the same spec). Fails,
 * changing nothing, if the base model, a target layer or a shape does not match.
 */
export async function loadAdapter(model: tf.LayersModel, dir: string, opts: LoadAdapterOptions = {}): Promise<string> {
  const { file, tensors } = await readAdapter(dir);
  const name = checkAdapterName(opts.name ?? file.adapter);
  checkModelKind(file, dir, 'layers');
  const layers = requireLoraLayers(model, 'loadAdapter');
  if (layers.some((l) => l.isMerged)) throw stateError(`loadAdapter: an adapter is merged into the base kernels; call unmerge() first.`);
  const byPath = new Map(catalog(model).map((e) => [e.path, e.layer]));

  // Check everything before changing anything.
  // Adapter weights are resolved after the adapters exist, hence the thunks.
  const writes: { target: () => tf.LayerVariable; data: Float32Array; shape: number[] }[] = [];
  const creates: LoraLayer[] = [];
  for (const p of file.targets) {
    const layer = byPath.get(p);
    if (!(layer instanceof LoraLayer)) {
      throw stateError(`loadAdapter: the adapter targets layer '${p}', which ${layer ? 'is not LoRA-wrapped' : 'does not exist'} in this model. Apply LoRA with the same targets (${file.targets.join(', ')}).`);
    }
    if (layer.hasAdapter(name)) {
      const have = layer.spec(name);
      if (JSON.stringify(have) !== JSON.stringify(file.spec)) {
        throw stateError(`loadAdapter: layer '${p}' already has an adapter '${name}' with a different spec (${JSON.stringify(have)} vs ${JSON.stringify(file.spec)}); load it under another name.`);
      }
    } else creates.push(layer);
    const [fanIn, fanOut] = layer.fans;
    const kShape = layer.kernel.shape as number[];
    if (file.spec.rank > Math.min(fanIn, fanOut)) throw stateError(`loadAdapter: rank ${file.spec.rank} is too high for layer '${p}'.`);
    const aShape = [...kShape.slice(0, -1), file.spec.rank];
    const bShape = [file.spec.rank, fanOut];
    writes.push(
      { target: () => layer.adapterWeights(name).A, data: mustGet(tensors, `${p}/lora_A`, aShape, file), shape: aShape },
      { target: () => layer.adapterWeights(name).B, data: mustGet(tensors, `${p}/lora_B`, bShape, file), shape: bShape },
    );
  }
  const mismatch = fingerprintMismatch(file.base, fingerprint(model, file.targets));
  if (mismatch) throw stateError(`loadAdapter: cannot load '${dir}' onto model '${model.name}': ${mismatch}.`);
  for (const p of file.modulesToSave) {
    const layer = byPath.get(p);
    if (!layer) throw stateError(`loadAdapter: the adapter saves layer '${p}' in full, but this model has no such layer.`);
    for (const w of layer.weights) {
      const shape = w.shape as number[];
      writes.push({ target: () => w, data: mustGet(tensors, `${p}/${localName(w)}`, shape, file), shape });
    }
  }

  for (const l of creates) l.addAdapter(name, file.spec);
  for (const { target, data, shape } of writes) {
    const t = tf.tensor(data, shape, 'float32');
    target().write(t);
    t.dispose();
  }
  if (opts.activate ?? true) setActiveAdapter(model, name);
  return name;
}

export function mustGet(tensors: Map<string, Float32Array>, key: string, shape: number[], file: AdapterFile): Float32Array {
  const data = tensors.get(key);
  const entry = file.weights.find((w) => w.name === key);
  if (!data || !entry) throw stateError(`loadAdapter: the adapter file has no weight '${key}'.`);
  if (JSON.stringify(entry.shape) !== JSON.stringify(shape)) {
    throw stateError(`loadAdapter: weight '${key}' has shape [${entry.shape}] in the file but [${shape}] in this model; the adapter was made for another base model or rank.`);
  }
  return data;
}

async function writeAtomic(file: string, data: string | Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, file);
  } catch (err) {
    await fs.rm(tmp, { force: true });
    throw ioError(`could not write '${file}': ${(err as Error).message}`);
  }
}
