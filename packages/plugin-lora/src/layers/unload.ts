import type * as tf from '@tensorflow/tfjs';
import { requireLoraLayers } from './adapters';
import { ADAPTABLE } from './catalog';
import { LoraLayer } from './lora-layer';
import { buildFromConfig, copyWeightsByName, editConfig, pairLayers } from './rebuild';

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
