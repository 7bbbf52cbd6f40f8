import * as tf from '@tensorflow/tfjs';

/** Every layer inside `layer` (itself, or a nested model's layers, recursively). */
export function layersIn(layer: tf.layers.Layer): tf.layers.Layer[] {
  return layer instanceof tf.LayersModel ? layer.layers.flatMap(layersIn) : [layer];
}
