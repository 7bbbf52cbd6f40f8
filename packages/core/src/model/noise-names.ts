import * as tf from '@tensorflow/tfjs';
import { isGeneratedLayerName } from '../checkpoint/variable-names';

/**
 * The name each layer of `model` keys its random draws on (`noiseSeed(ctx, name, draw)`):
 * the layer's own name when the user gave it one, else its class and its rank among the
 * model's layers of that class, in the order of the flattened layer list (nested models'
 * layers in place): 'Dropout#2' is the model's second Dropout. tfjs numbers unnamed layers
 * per process ('dropout_Dropout7'), so keying on that name would give the same model other
 * masks each time it is built (a second trainer, a resume in the same process, a process
 * that built other models first); the rank is the same in every build and every copy (a
 * worker's model rebuilt from the JSON), and no two layers of one model share it.
 */
export function noiseNames(model: tf.LayersModel): Map<tf.layers.Layer, string> {
  const names = new Map<tf.layers.Layer, string>();
  const seen = new Map<string, number>();
  const visit = (layer: tf.layers.Layer): void => {
    if (names.has(layer)) return; // a layer shared by two nested models: its first place
    const kind = layer.getClassName();
    const rank = (seen.get(kind) ?? 0) + 1;
    seen.set(kind, rank);
    names.set(layer, isGeneratedLayerName(layer.name) ? `${kind}#${rank}` : layer.name);
    if (layer instanceof tf.LayersModel) layer.layers.forEach(visit);
  };
  model.layers.forEach(visit);
  return names;
}

/**
 * The name a layer that draws noise itself should pass to `noiseSeed` from its `call()`:
 * its `noiseNames` entry, which a trainer's forward hands every layer in the call kwargs
 * (`kwargs.noiseNames`), or its own name outside a trainer.
 */
export function layerNoiseName(layer: tf.layers.Layer, kwargs?: unknown): string {
  const names = (kwargs as { noiseNames?: unknown } | undefined)?.noiseNames;
  return (names instanceof Map ? (names.get(layer) as string | undefined) : undefined) ?? layer.name;
}
