import * as tf from '@tensorflow/tfjs';
import { layersIn } from '../model/layers-in';

/**
 * `topology` (the model's `toJSON`, snake_case keys) with each AlphaDropout's noiseShape
 * written back in: tfjs's AlphaDropout.getConfig leaves it out (tfjs 4.22), so a replica's
 * copy rebuilt from the JSON would draw noise of the input's shape where the main thread's
 * layer draws its noiseShape. The constructor reads it from the config, so this restores it.
 */
export function withAlphaDropoutNoiseShapes(topology: unknown, model: tf.LayersModel): unknown {
  const shapes = new Map<string, number[]>();
  for (const l of layersIn(model)) {
    const noiseShape = (l as { noiseShape?: number[] | null }).noiseShape;
    if (l.getClassName() === 'AlphaDropout' && noiseShape) shapes.set(l.name, [...noiseShape]);
  }
  if (!shapes.size) return topology;
  const visit = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(visit);
    if (node === null || typeof node !== 'object') return node;
    const copy = Object.fromEntries(Object.entries(node).map(([k, v]) => [k, visit(v)])) as { class_name?: unknown; config?: { name?: string } };
    const shape = copy.class_name === 'AlphaDropout' ? shapes.get(copy.config?.name ?? '') : undefined;
    return shape ? { ...copy, config: { ...copy.config, noise_shape: shape } } : copy;
  };
  return visit(topology);
}
