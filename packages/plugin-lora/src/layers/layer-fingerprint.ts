import type * as tf from '@tensorflow/tfjs';
import { type BaseFingerprint, makeFingerprint } from '../common/fingerprint';
import { isContainer } from './catalog';
import { LoraLayer } from './lora-layer';
import { localName } from './rebuild';

/** Running statistics: a frozen BatchNormalization still updates them in training mode. */
const STATISTICS = /^moving_/;

/** Every base weight of a leaf layer by weight path ('fc1/kernel'); LoRA layers give their kernel and bias. */
function baseWeights(model: tf.LayersModel): { layers: BaseFingerprint['layers']; weights: Map<string, tf.Tensor>; kernels: Map<string, tf.Tensor> } {
  const layers: BaseFingerprint['layers'] = [];
  const weights = new Map<string, tf.Tensor>();
  // Files written before every weight was sampled name an adapted kernel by its layer path.
  const kernels = new Map<string, tf.Tensor>();
  const walk = (c: tf.LayersModel, prefix: string): void => {
    for (const l of c.layers) {
      const path = prefix + l.name;
      if (isContainer(l)) {
        walk(l, `${path}/`);
        continue;
      }
      if (l.getClassName() === 'InputLayer') continue;
      const base = l instanceof LoraLayer ? (l.bias ? [l.kernel, l.bias] : [l.kernel]) : l.weights;
      layers.push({ path, className: l instanceof LoraLayer ? l.baseClassName : l.getClassName(), shapes: base.map((w) => w.shape as number[]) });
      for (const w of base) {
        const name = localName(w);
        weights.set(`${path}/${name}`, w.read());
        if (name === 'kernel' || name === 'embeddings') kernels.set(path, w.read());
      }
    }
  };
  walk(model, '');
  return { layers, weights, kernels };
}

/**
 * The fingerprint of a layers model's base: every leaf layer with its base class and
 * base weight shapes (LoRA layers as the layer they wrap), plus samples of the weights
 * named in `samplePaths` ('fc1/kernel', 'fc1/bias'; a bare layer path names its kernel).
 */
export function fingerprint(model: tf.LayersModel, samplePaths: readonly string[]): BaseFingerprint {
  const { layers, weights, kernels } = baseWeights(model);
  return makeFingerprint(layers, new Map([...kernels, ...weights]), samplePaths);
}

/**
 * The weight paths an adapter file samples: every base weight except those of
 * `modulesToSave` layers (the file stores them, training changed them) and running
 * statistics (training changes them even in a frozen layer).
 */
export function sampledWeights(model: tf.LayersModel, modulesToSave: readonly string[]): string[] {
  const skip = new Set(modulesToSave);
  return [...baseWeights(model).weights.keys()].filter((p) => {
    const cut = p.lastIndexOf('/');
    return !skip.has(p.slice(0, cut)) && !STATISTICS.test(p.slice(cut + 1));
  });
}
