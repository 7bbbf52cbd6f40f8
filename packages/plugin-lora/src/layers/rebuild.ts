import * as tf from '@tensorflow/tfjs';
import { registeredLayerClass } from '@tapfit/core';
import { configError } from '../common/errors';
import { isContainer, layersByPath } from './catalog';

/** A layer entry of a model config (the same shape for Sequential and functional models). */
export interface LayerConfigEntry {
  className: string;
  config: { name: string; layers?: LayerConfigEntry[]; [key: string]: unknown };
  [key: string]: unknown;
}

type ModelConfig = { layers: LayerConfigEntry[]; [key: string]: unknown };

const CONTAINERS = new Set(['Sequential', 'Model', 'Functional']);

/**
 * A deep copy of the model's config with `edit` applied to each leaf layer entry
 * (nested models are walked; paths are 'outer/inner').
 */
export function editConfig(model: tf.LayersModel, edit: (path: string, entry: LayerConfigEntry) => LayerConfigEntry): ModelConfig {
  const config = JSON.parse(JSON.stringify(model.getConfig())) as ModelConfig;
  const walk = (entries: LayerConfigEntry[], prefix: string): LayerConfigEntry[] =>
    entries.map((entry) => {
      const path = prefix + entry.config.name;
      if (CONTAINERS.has(entry.className)) return { ...entry, config: { ...entry.config, layers: walk(entry.config.layers ?? [], `${path}/`) } };
      if (entry.className === 'InputLayer') return entry;
      return edit(path, entry);
    });
  return { ...config, layers: walk(config.layers, '') };
}

/** Build a model of `className` ('Sequential', 'Model', ...) from a config, as tf.loadLayersModel would. */
export function buildFromConfig(className: string, config: ModelConfig): tf.LayersModel {
  const registered = registeredLayerClass(className);
  if (!registered) throw configError(`cannot rebuild a model of class '${className}': it is not registered with tf.serialization.registerClass.`);
  const { cls, fromConfig } = registered;
  try {
    return fromConfig(cls, config as unknown as tf.serialization.ConfigDict) as unknown as tf.LayersModel;
  } catch (err) {
    throw configError(
      `could not rebuild the model from its config (${(err as Error).message}). LoRA rebuilds the model the way tf.loadLayersModel does, so every custom layer must be registered with tf.serialization.registerClass.`,
    );
  }
}

/** The last path component of a weight's name ('fc1/kernel' -> 'kernel'). */
export function localName(w: tf.LayerVariable): string {
  const n = w.originalName;
  return n.slice(n.lastIndexOf('/') + 1);
}

/** Copy weights between two layers of the same kind, matched by local weight name. */
export function copyWeightsByName(from: tf.layers.Layer, to: tf.layers.Layer): void {
  const src = new Map(from.weights.map((w) => [localName(w), w]));
  if (src.size !== from.weights.length || to.weights.length !== from.weights.length) {
    to.setWeights(from.getWeights()); // names not unique: fall back to tfjs' own order
    return;
  }
  for (const w of to.weights) {
    const s = src.get(localName(w));
    if (!s) throw configError(`layer '${to.name}': no weight '${localName(w)}' in the source layer to copy from.`);
    w.write(s.read());
  }
}

/** Pair every leaf layer of `a` with the layer at the same path in `b`. */
export function pairLayers(a: tf.LayersModel, b: tf.LayersModel): [string, tf.layers.Layer, tf.layers.Layer][] {
  const bs = layersByPath(b);
  const out: [string, tf.layers.Layer, tf.layers.Layer][] = [];
  for (const [path, la] of layersByPath(a)) {
    const lb = bs.get(path);
    if (lb && la.getClassName() !== 'InputLayer' && !isContainer(la)) out.push([path, la, lb]);
  }
  return out;
}
