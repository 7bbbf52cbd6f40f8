import * as tf from '@tensorflow/tfjs';
import { type AdapterOptions, asList, checkAdapterName, configError, type LayerSelector, resolveSpec, stateError } from '../shared/config';
import { ADAPTABLE, catalog, loraLayersOf } from './catalog';
import { LoraLayer } from './lora-layer';
import { buildFromConfig, copyWeightsByName, editConfig, pairLayers } from './rebuild';
import { checkSelector, describeSelector, selects } from '../shared/selectors';

/**
 * Make variable flags agree with layer flags: frozen layers' variables not trainable.
 * tfjs resets these flags when it builds a Sequential or loads a model, and raw
 * tf.variableGrads(f) / optimizer.minimize(f) without a var list read them.
 */
export function syncTrainableFlags(model: tf.LayersModel): void {
  for (const e of catalog(model)) if (!(e.layer instanceof LoraLayer) && !e.layer.trainable) for (const w of e.layer.weights) w.trainable = false;
}

/** The LoRA layers of a model; an error if there are none. */
export function requireLoraLayers(model: tf.LayersModel, action: string): LoraLayer[] {
  const layers = loraLayersOf(model);
  if (layers.length === 0) throw configError(`${action}: model '${model.name}' has no LoRA layers; call applyLora(model, {...}) first.`);
  return layers;
}

export function adapterNamesOf(model: tf.LayersModel): string[] {
  return [...new Set(loraLayersOf(model).flatMap((l) => l.adapterNames))];
}

/** The adapter in use (null: base model only). */
export function activeAdapterOf(model: tf.LayersModel): string | null {
  return loraLayersOf(model).find((l) => l.activeAdapter !== null)?.activeAdapter ?? null;
}

export function isMerged(model: tf.LayersModel): boolean {
  return loraLayersOf(model).some((l) => l.isMerged);
}

/** Use adapter `name` in every layer that has it (null: base model only). */
export function setActiveAdapter(model: tf.LayersModel, name: string | null): void {
  const layers = requireLoraLayers(model, 'setActiveAdapter');
  if (name !== null && !layers.some((l) => l.hasAdapter(name))) {
    throw configError(`setActiveAdapter: no adapter named '${name}' (adapters: ${adapterNamesOf(model).join(', ')}).`);
  }
  const merged = layers.find((l) => l.isMerged);
  if (merged) throw stateError(`setActiveAdapter: adapter '${merged.activeAdapter}' is merged; call unmerge() first.`);
  for (const l of layers) l.setActiveAdapter(name !== null && l.hasAdapter(name) ? name : null);
}

/**
 * Fold the active adapter into the base kernels (K += s A B) so inference runs the
 * base computation only. All-or-nothing: every new kernel is computed and checked
 * finite before any is written.
 */
export function mergeAdapter(model: tf.LayersModel): void {
  swapKernels(model, true);
}

/** Undo `mergeAdapter` (K -= s A B; equal to the old kernel up to float rounding). */
export function unmergeAdapter(model: tf.LayersModel): void {
  swapKernels(model, false);
}

function swapKernels(model: tf.LayersModel, merge: boolean): void {
  const action = merge ? 'merge' : 'unmerge';
  const layers = requireLoraLayers(model, action).filter((l) => l.activeAdapter !== null);
  if (layers.length === 0) throw stateError(`${action}: no adapter is active; call setActiveAdapter(name) first.`);
  const wrong = layers.filter((l) => l.isMerged === merge);
  if (wrong.length) {
    throw stateError(
      merge
        ? `merge: adapter '${wrong[0].activeAdapter}' is already merged (layers ${wrong.map((l) => l.name).join(', ')}); merging twice would add the update twice. Call unmerge() first.`
        : `unmerge: adapter '${wrong[0].activeAdapter}' is not merged (layers ${wrong.map((l) => l.name).join(', ')}); nothing to unmerge.`,
    );
  }
  const next: tf.Tensor[] = [];
  try {
    for (const l of layers) next.push(l.prepareKernel(merge));
    const bad = layers.filter((_, i) => !tf.tidy(() => tf.all(tf.isFinite(next[i])).dataSync()[0]));
    if (bad.length) throw stateError(`${action}: the result is not finite in layers ${bad.map((l) => l.name).join(', ')}; the adapter weights hold NaN or Inf. Nothing was changed.`);
    layers.forEach((l, i) => l.commitKernel(next[i], merge));
  } finally {
    tf.dispose(next);
  }
}

/**
 * A plain tfjs-layers model (Dense / Conv2D / Embedding) whose kernels include the
 * active adapter, ready for `model.save`. The LoRA model is left as it is. Every layer
 * of the result is trainable.
 */
export function unloadLora(model: tf.LayersModel): tf.LayersModel {
  requireLoraLayers(model, 'unload');
  const base = Object.fromEntries(Object.entries(ADAPTABLE).map(([k, v]) => [v, k]));
  const config = editConfig(model, (_path, entry) => {
    if (!(entry.className in base)) return { ...entry, config: { ...entry.config, trainable: true } };
    const { lora: _lora, ...rest } = entry.config;
    return { ...entry, className: base[entry.className], config: { ...rest, trainable: true } };
  });
  const plain = buildFromConfig(model.getClassName(), config);
  try {
    for (const [, from, to] of pairLayers(model, plain)) {
      if (!(from instanceof LoraLayer)) {
        copyWeightsByName(from, to);
        continue;
      }
      const kernel = from.effectiveKernel();
      to.setWeights(from.bias ? [kernel, from.bias.read()] : [kernel]);
      kernel.dispose();
    }
  } catch (err) {
    plain.dispose();
    throw err;
  }
  return plain;
}

export interface AddAdapterOptions extends AdapterOptions {
  /** LoRA layers that get the adapter (default: all). Every selector must match. */
  targets?: LayerSelector | readonly LayerSelector[];
  seed?: number;
}

/** Add adapter `name` (A random, B zero) to already-wrapped layers; all-or-nothing. */
export function addAdapter(model: tf.LayersModel, name: string, opts: AddAdapterOptions): string[] {
  checkAdapterName(name);
  const spec = resolveSpec(opts);
  requireLoraLayers(model, 'addAdapter');
  const entries = catalog(model).filter((e) => e.layer instanceof LoraLayer);
  const selectors = asList(opts.targets).map((s) => checkSelector(s, 'targets'));
  const chosen = selectors.length === 0 ? entries : entries.filter((e) => selectors.some((s) => selects(s, e)));
  for (const s of selectors) {
    if (!entries.some((e) => selects(s, e))) {
      throw configError(`addAdapter: targets selector ${describeSelector(s)} matches no LoRA layer. Adapters can only be added to layers wrapped by applyLora: ${entries.map((e) => e.path).join(', ')}.`);
    }
  }
  for (const e of chosen) {
    const l = e.layer as LoraLayer;
    if (l.hasAdapter(name)) throw configError(`addAdapter: layer '${e.path}' already has an adapter '${name}'.`);
    const [fanIn, fanOut] = l.fans;
    if (spec.rank > Math.min(fanIn, fanOut)) throw configError(`addAdapter: option 'rank' = ${spec.rank} exceeds min(fan-in, fan-out) = ${Math.min(fanIn, fanOut)} of layer '${e.path}'.`);
  }
  chosen.forEach((e, i) => (e.layer as LoraLayer).addAdapter(name, spec, opts.seed === undefined ? undefined : opts.seed + 1000 * i));
  return chosen.map((e) => e.path);
}
