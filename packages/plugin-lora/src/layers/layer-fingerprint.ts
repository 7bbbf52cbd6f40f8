import type * as tf from '@tensorflow/tfjs';
import { configError } from '../common/errors';
import { type BaseFingerprint, makeFingerprint } from '../common/fingerprint';
import { isContainer } from './catalog';
import { LoraLayer } from './lora-layer';
import { localName } from './rebuild';

/**
 * The weights a layer registered as non-trainable: running statistics (BatchNormalization's
 * moving_mean and moving_variance, OnlineNorm's mean, variance, u and v), which training
 * updates even in a frozen layer. tfjs keeps that registration only in a private list;
 * the public `nonTrainableWeights` lists every weight of a frozen layer.
 */
function registeredNonTrainable(layer: tf.layers.Layer): readonly tf.LayerVariable[] {
  const list = (layer as unknown as { _nonTrainableWeights?: unknown })._nonTrainableWeights;
  if (!Array.isArray(list)) throw configError(`layer '${layer.name}' has no list of non-trainable weights (_nonTrainableWeights); this tfjs version is not supported.`);
  return list as tf.LayerVariable[];
}

interface BaseWeights {
  layers: BaseFingerprint['layers'];
  /** Every base weight by weight path ('fc1/kernel'). */
  weights: Map<string, tf.LayerVariable>;
  /** Files written before every weight was sampled name an adapted kernel by its layer path. */
  kernels: Map<string, tf.LayerVariable>;
  /** The paths of running statistics (registered non-trainable); never in a LoRA layer. */
  statistics: Set<string>;
}

/** Every base weight of a leaf layer by weight path ('fc1/kernel'); LoRA layers give their kernel and bias. */
function baseWeights(model: tf.LayersModel): BaseWeights {
  const out: BaseWeights = { layers: [], weights: new Map(), kernels: new Map(), statistics: new Set() };
  const walk = (c: tf.LayersModel, prefix: string): void => {
    for (const l of c.layers) {
      const path = prefix + l.name;
      if (isContainer(l)) {
        walk(l, `${path}/`);
        continue;
      }
      if (l.getClassName() === 'InputLayer') continue;
      const base = l instanceof LoraLayer ? (l.bias ? [l.kernel, l.bias] : [l.kernel]) : l.weights;
      const statistics = new Set(l instanceof LoraLayer ? [] : registeredNonTrainable(l));
      out.layers.push({ path, className: l instanceof LoraLayer ? l.baseClassName : l.getClassName(), shapes: base.map((w) => w.shape as number[]) });
      for (const w of base) {
        const name = localName(w);
        out.weights.set(`${path}/${name}`, w);
        if (statistics.has(w)) out.statistics.add(`${path}/${name}`);
        if (name === 'kernel' || name === 'embeddings') out.kernels.set(path, w);
      }
    }
  };
  walk(model, '');
  return out;
}

/**
 * The fingerprint of a layers model's base: every leaf layer with its base class and
 * base weight shapes (LoRA layers as the layer they wrap), plus samples of the weights
 * named in `samplePaths` ('fc1/kernel', 'fc1/bias'; a bare layer path names its kernel).
 */
export function fingerprint(model: tf.LayersModel, samplePaths: readonly string[]): BaseFingerprint {
  const { layers, weights, kernels } = baseWeights(model);
  const read = (m: Map<string, tf.LayerVariable>) => [...m].map(([p, w]): [string, tf.Tensor] => [p, w.read()]);
  return makeFingerprint(layers, new Map([...read(kernels), ...read(weights)]), samplePaths);
}

/** A weight path is in a `modulesToSave` layer (stored in full). */
function inSaved(path: string, saved: ReadonlySet<string>): boolean {
  return saved.has(path.slice(0, path.lastIndexOf('/')));
}

/**
 * The weight paths an adapter file samples: every base weight except those of
 * `modulesToSave` layers (the file stores them, training changed them) and running
 * statistics (training changes them even in a frozen layer; the file stores them).
 */
export function sampledWeights(model: tf.LayersModel, modulesToSave: readonly string[]): string[] {
  const saved = new Set(modulesToSave);
  const { weights, statistics } = baseWeights(model);
  return [...weights.keys()].filter((p) => !inSaved(p, saved) && !statistics.has(p));
}

/**
 * The running statistics outside `modulesToSave` layers, by weight path: what an adapter
 * file stores besides the adapters, so that a load reproduces the trained model's outputs.
 */
export function statisticWeights(model: tf.LayersModel, modulesToSave: readonly string[]): Map<string, tf.LayerVariable> {
  const saved = new Set(modulesToSave);
  const { weights, statistics } = baseWeights(model);
  // The file holds float32.
  return new Map([...statistics].filter((p) => !inSaved(p, saved) && weights.get(p)!.dtype === 'float32').map((p) => [p, weights.get(p)!]));
}
