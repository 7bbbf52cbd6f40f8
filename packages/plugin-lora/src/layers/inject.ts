import * as tf from '@tensorflow/tfjs';
import { checkAdapterName, configError, DEFAULT_ADAPTER, type LoraOptions, resolveSpec } from '../shared/config';
import { ADAPTABLE, type AdaptableKind } from './catalog';
import { LoraLayer, type LoraLayerState } from './lora-layer';
import { LoraModel } from './lora-model';
import { formatPlan, type LoraPlan, planError, planLora } from '../shared/lora-plan';
import { syncTrainableFlags } from './adapters';
import { buildFromConfig, copyWeightsByName, editConfig, localName, pairLayers } from './rebuild';

/**
 * Wrap the targeted layers of a tfjs-layers model with LoRA. Returns a new model
 * (TF.js layers cannot be swapped in place) whose targeted layers hold a copy of the
 * base weights, frozen, plus a trainable adapter (B = 0, so its outputs start equal to
 * the base model's). Every other layer is frozen, except `modulesToSave`. The input
 * model is not modified.
 *
 * With `dryRun: true` nothing is built: the plan is printed and returned, unmatched
 * selectors included.
 */
export function applyLora(model: tf.LayersModel, opts: LoraOptions & { dryRun: true }): LoraPlan;
export function applyLora(model: tf.LayersModel, opts: LoraOptions & { dryRun?: false }): LoraModel;
export function applyLora(model: tf.LayersModel, opts: LoraOptions & { dryRun?: boolean }): LoraModel | LoraPlan {
  const spec = resolveSpec(opts);
  const adapter = checkAdapterName(opts.adapterName ?? DEFAULT_ADAPTER);
  if (opts.seed !== undefined && !Number.isInteger(opts.seed)) throw configError(`option 'seed' must be an integer (got ${String(opts.seed)}).`);
  const plan = planLora(model, opts, spec);
  if (opts.dryRun) {
    console.log(formatPlan(plan));
    return plan;
  }
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
  return new LoraModel(rebuilt, plan);
}

function copyBaseWeights(from: tf.layers.Layer, to: LoraLayer): void {
  const byName = new Map(from.weights.map((w) => [localName(w), w]));
  const kernel = byName.get('kernel') ?? byName.get('embeddings');
  if (!kernel) throw configError(`layer '${from.name}' has no kernel to adapt.`);
  to.kernel.write(kernel.read());
  const bias = byName.get('bias');
  if (to.bias && bias) to.bias.write(bias.read());
}
