import * as tf from '@tensorflow/tfjs';
import { type LoraOptions, resolveOptions } from '../common/config';
import { configError } from '../common/errors';
import { type LoraPlan, planError } from '../common/lora-plan';
import { ADAPTABLE, type AdaptableKind } from './catalog';
import { planLora } from './layer-plan';
import { LoraLayer, type LoraLayerState } from './lora-layer';
import { buildFromConfig, copyWeightsByName, editConfig, localName, pairLayers } from './rebuild';
import { syncTrainableFlags } from './trainable-flags';

/**
 * The surgery behind `applyLora`: the rebuilt model with LoRA layers (base weights
 * copied and frozen, A B = 0) and the plan it followed. Every option is checked first;
 * nothing is built if the plan is refused.
 */
export function injectLora(model: tf.LayersModel, opts: LoraOptions): { model: tf.LayersModel; plan: LoraPlan } {
  const { spec, adapter } = resolveOptions(opts);
  const plan = planLora(model, opts, spec);
  const err = planError(plan);
  if (err) throw err;

  const adapted = new Map(plan.adapted.map((l, i) => [l.path, i]));
  const saved = new Set(plan.saved.map((l) => l.path));
  const config = editConfig(model, (path, entry) => {
    const index = adapted.get(path);
    if (index === undefined) return { ...entry, config: { ...entry.config, trainable: saved.has(path) } };
    const lora: LoraLayerState = {
      adapters: { [adapter]: spec },
      active: adapter,
      merged: false,
      seed: opts.seed === undefined ? null : opts.seed + 1000 * index,
    };
    return { ...entry, className: ADAPTABLE[entry.className as AdaptableKind], config: { ...entry.config, lora } };
  });
  const rebuilt = buildFromConfig(model.getClassName(), config);
  try {
    // A Sequential builds its inner graph lazily and, doing so, marks every weight of
    // its layers trainable; build it now so the freezing below sticks.
    if (rebuilt instanceof tf.Sequential && !rebuilt.built) rebuilt.build();
    for (const [, from, to] of pairLayers(model, rebuilt)) {
      if (to instanceof LoraLayer) {
        copyBaseWeights(from, to);
        continue;
      }
      copyWeightsByName(from, to);
    }
    syncTrainableFlags(rebuilt);
  } catch (e) {
    rebuilt.dispose();
    throw e;
  }
  return { model: rebuilt, plan };
}

function copyBaseWeights(from: tf.layers.Layer, to: LoraLayer): void {
  const byName = new Map(from.weights.map((w) => [localName(w), w]));
  const kernel = byName.get('kernel') ?? byName.get('embeddings');
  if (!kernel) throw configError(`layer '${from.name}' has no kernel to adapt.`);
  to.kernel.write(kernel.read());
  const bias = byName.get('bias');
  if (to.bias && bias) to.bias.write(bias.read());
}
