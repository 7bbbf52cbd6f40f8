import type * as tf from '@tensorflow/tfjs';
import { type AdapterOptions, asList, checkAdapterName, resolveSpec } from '../common/config';
import { configError, stateError } from '../common/errors';
import { ADAPTER_KEYS, checkOptionKeys } from '../common/option-keys';
import { checkSelector, describeSelector, type LayerSelector } from '../common/selectors';
import { catalog, loraLayersOf } from './catalog';
import { selectsLayer } from './layer-selector';
import { LoraLayer } from './lora-layer';
import { syncTrainableFlags } from './trainable-flags';

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
  syncTrainableFlags(model); // a layer enables its adapter's flags even inside a model set untrainable
}

export interface AddAdapterOptions extends AdapterOptions {
  /** LoRA layers that get the adapter (default: all). Every selector must match. */
  targets?: LayerSelector | readonly LayerSelector[] | undefined;
  seed?: number | undefined;
}

/** Add adapter `name` (update A B = 0 at the start) to already-wrapped layers; all-or-nothing. */
export function addAdapter(model: tf.LayersModel, name: string, opts: AddAdapterOptions): string[] {
  checkOptionKeys('addAdapter', opts, [...ADAPTER_KEYS, 'targets', 'seed']);
  checkAdapterName(name);
  const spec = resolveSpec(opts);
  requireLoraLayers(model, 'addAdapter');
  const entries = catalog(model).filter((e) => e.layer instanceof LoraLayer);
  const selectors = asList(opts.targets).map((s) => checkSelector(s, 'targets'));
  const chosen = selectors.length === 0 ? entries : entries.filter((e) => selectors.some((s) => selectsLayer(s, e)));
  for (const s of selectors) {
    if (!entries.some((e) => selectsLayer(s, e))) {
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
