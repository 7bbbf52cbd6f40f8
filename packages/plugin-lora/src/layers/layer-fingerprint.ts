import type * as tf from '@tensorflow/tfjs';
import { type BaseFingerprint, makeFingerprint } from '../common/fingerprint';
import { isContainer } from './catalog';
import { LoraLayer } from './lora-layer';
import { localName } from './rebuild';

/**
 * The fingerprint of a layers model's base: every leaf layer with its base class and
 * base weight shapes (LoRA layers as the layer they wrap), plus samples of the kernels
 * of the layers named in `samplePaths`.
 */
export function fingerprint(model: tf.LayersModel, samplePaths: readonly string[]): BaseFingerprint {
  const layers: BaseFingerprint['layers'] = [];
  const kernels = new Map<string, tf.Tensor>();
  const walk = (c: tf.LayersModel, prefix: string): void => {
    for (const l of c.layers) {
      const path = prefix + l.name;
      if (isContainer(l)) {
        walk(l, `${path}/`);
        continue;
      }
      if (l.getClassName() === 'InputLayer') continue;
      if (l instanceof LoraLayer) {
        const base = l.bias ? [l.kernel, l.bias] : [l.kernel];
        layers.push({ path, className: l.baseClassName, shapes: base.map((w) => w.shape as number[]) });
        kernels.set(path, l.kernel.read());
      } else {
        layers.push({ path, className: l.getClassName(), shapes: l.weights.map((w) => w.shape as number[]) });
        const k = l.weights.find((w) => ['kernel', 'embeddings'].includes(localName(w)));
        if (k) kernels.set(path, k.read());
      }
    }
  };
  walk(model, '');
  return makeFingerprint(layers, kernels, samplePaths);
}
