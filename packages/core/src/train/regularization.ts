import * as tf from '@tensorflow/tfjs';
import { engineGradients } from '../backend/engine-internals';
import type { NamedTensors } from '../tensors';

/** The weight penalties' sum and its gradients, by variable name (variables it does not reach are absent). */
export interface Penalty {
  value: tf.Scalar;
  grads: NamedTensors;
}

/**
 * The weight penalties a tfjs-layers model declares (`kernelRegularizer`,
 * `biasRegularizer`, ...), which model.fit adds to its loss: a function that computes their
 * sum and its gradients towards the given variables, or null when the model declares none.
 * Separate from the Backprop's gradients because the penalties depend on the weights, not
 * on the prediction: a segment-by-segment backward (the memory executor's, the pipeline's)
 * never reaches them.
 */
export function layersPenalty(model: tf.LayersModel | undefined): ((variables: readonly tf.Variable[]) => Penalty) | null {
  if (!model || penalizedLayers(model).length === 0) return null;
  return (variables) => {
    const sum = (): tf.Tensor => {
      const penalties = weightPenalties(model);
      return penalties.length ? tf.addN(penalties) : tf.scalar(0);
    };
    const { value, grads } = engineGradients(sum, [...variables], undefined, true);
    const named: NamedTensors = {};
    variables.forEach((v, i) => {
      const g = grads[i];
      if (g) named[v.name] = g;
    });
    return { value: value as tf.Scalar, grads: named };
  };
}

/**
 * The weight penalties of a tfjs-layers model's regularizers (`kernelRegularizer`, ...),
 * one scalar each, computed from the current weights: what model.fit adds to its loss,
 * read the way model.fit reads them, from the graph it runs (`calculateLosses()` of a
 * Sequential's inner functional model, or of the model itself). So a layer of a Sequential
 * nested first in a Sequential is counted (the outer graph runs it directly; the nested
 * Sequential's own calculateLosses() is empty), and a layer applied twice counts twice,
 * once per application, as model.fit counts it (Keras counts it once).
 */
export function weightPenalties(model: tf.LayersModel): tf.Tensor[] {
  return fitGraph(model).calculateLosses();
}

/**
 * The model's leaf layers (nested models searched) that declare weight penalties, each
 * once (for a stage's share of them, and describe()).
 */
export function penalizedLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return leafLayers(model).filter((layer) => tf.tidy(() => layer.calculateLosses().length) > 0);
}

/**
 * The functional model model.fit trains: a Sequential's inner one (which tfjs builds
 * lazily, as its predict() does when there is none yet), or the model itself.
 */
function fitGraph(model: tf.LayersModel): tf.LayersModel {
  if (!(model instanceof tf.Sequential)) return model;
  const holder = model as unknown as { model?: tf.LayersModel | null };
  if (holder.model == null) model.build();
  return holder.model!;
}

function leafLayers(layer: tf.layers.Layer): tf.layers.Layer[] {
  return layer instanceof tf.LayersModel ? layer.layers.flatMap(leafLayers) : [layer];
}
