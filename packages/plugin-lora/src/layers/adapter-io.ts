import * as tf from '@tensorflow/tfjs';
import { type AdapterFile, checkModelKind, readAdapter, storedWeight, writeAdapterFiles } from '../common/adapter-file';
import { checkAdapterName } from '../common/config';
import { stateError } from '../common/errors';
import { fingerprintMismatch } from '../common/fingerprint';
import { requireLoraLayers, setActiveAdapter } from './adapters';
import { catalog } from './catalog';
import { fingerprint, sampledWeights, statisticWeights } from './layer-fingerprint';
import { LoraLayer } from './lora-layer';
import { localName } from './rebuild';

/** Non-LoRA layers left trainable by applyLora: the modulesToSave. */
function savedModules(model: tf.LayersModel): { path: string; layer: tf.layers.Layer }[] {
  return catalog(model)
    .filter((e) => !(e.layer instanceof LoraLayer) && e.layer.trainable && e.layer.weights.length > 0)
    .map((e) => ({ path: e.path, layer: e.layer }));
}

/**
 * Write adapter `adapter` (default: the active one) of a LoRA model to directory `dir`:
 * adapter_config.json (versioned; rank, alpha, targets, base-model fingerprint) and
 * adapter_weights.bin (float32, little-endian): the adapters, modulesToSave layers and
 * the running statistics (which training moves in frozen layers too). A save that fails
 * or is killed part-way leaves `dir` holding the adapter it held before, or the new one
 * (writeAdapterFiles); the config holds the weights' sha256, so a pair torn some other
 * way (files copied from two saves) is detected on load.
 */
export async function saveAdapter(model: tf.LayersModel, dir: string, opts: { adapter?: string | undefined } = {}): Promise<AdapterFile> {
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
  const modulesToSave = modules.map((m) => m.path);
  const statistics = statisticWeights(model, modulesToSave);
  for (const [p, w] of statistics) tensors.push([p, w.read()]);
  const base = fingerprint(model, sampledWeights(model, modulesToSave));
  return writeAdapterFiles(dir, { adapter: name, spec: { ...spec }, targets, modulesToSave, statistics: [...statistics.keys()], base }, tensors);
}

export interface LoadAdapterOptions {
  /** Name to load the adapter under (default: the name it was saved with). */
  name?: string | undefined;
  /** Make it the active adapter (default true). */
  activate?: boolean | undefined;
}

/**
 * Load an adapter saved by `saveAdapter` into a LoRA model built on the same base.
 * Creates the adapter (or overwrites an existing one with the same spec and layers) and
 * sets the modulesToSave layers and running statistics to the saved values. Fails,
 * changing nothing, if the base model, a target layer or a shape does not match, or if
 * an existing adapter of that name is on layers the file does not cover.
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
      { target: () => layer.adapterWeights(name).A, data: storedWeight(tensors, `${p}/lora_A`, aShape, file), shape: aShape },
      { target: () => layer.adapterWeights(name).B, data: storedWeight(tensors, `${p}/lora_B`, bShape, file), shape: bShape },
    );
  }
  // Overwriting an adapter replaces it whole: layers that hold `name` but are not in the
  // file would keep their old factors next to the file's, a mix that is neither adapter.
  const uncovered = catalog(model)
    .filter((e) => e.layer instanceof LoraLayer && e.layer.hasAdapter(name) && !file.targets.includes(e.path))
    .map((e) => e.path);
  if (uncovered.length > 0) {
    throw stateError(
      `loadAdapter: this model has an adapter '${name}' on ${uncovered.length === 1 ? 'layer' : 'layers'} ${uncovered.map((p) => `'${p}'`).join(', ')} too, which '${dir}' does not cover (its targets: ${file.targets.join(', ')}); ` +
        `loading it would leave the old '${name}' weights there, a mix of two adapters. Load it under another name ({ name: '...' }), or apply LoRA with targets [${file.targets.join(', ')}].`,
    );
  }
  // Sample what the file sampled (older files: the adapted kernels only).
  const mismatch = fingerprintMismatch(file.base, fingerprint(model, Object.keys(file.base.samples)));
  if (mismatch) throw stateError(`loadAdapter: cannot load '${dir}' onto model '${model.name}': ${mismatch}.`);
  for (const p of file.modulesToSave) {
    const layer = byPath.get(p);
    if (!layer) throw stateError(`loadAdapter: the adapter saves layer '${p}' in full, but this model has no such layer.`);
    for (const w of layer.weights) {
      const shape = w.shape as number[];
      writes.push({ target: () => w, data: storedWeight(tensors, `${p}/${localName(w)}`, shape, file), shape });
    }
  }
  const statistics = statisticWeights(model, file.modulesToSave);
  for (const p of file.statistics ?? []) {
    const w = statistics.get(p);
    if (!w) throw stateError(`loadAdapter: the adapter stores running statistic '${p}', but this model has no such non-trainable weight; the adapter was made for another base model.`);
    const shape = w.shape as number[];
    writes.push({ target: () => w, data: storedWeight(tensors, p, shape, file), shape });
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
