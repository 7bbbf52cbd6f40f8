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
    const { value, grads } = engineGradients(() => tf.addN(weightPenalties(model)), [...variables], undefined, true);
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
 * one scalar each, computed from the current weights: what model.fit adds to its loss. Read
 * from the layers: a Sequential's own calculateLosses() can come back empty (its container
 * nodes live on its inner model) though fit() adds them; a nested model is a layer whose
 * calculateLosses() collects its own.
 */
export function weightPenalties(model: tf.LayersModel): tf.Tensor[] {
  return model.layers.flatMap((layer) => layer.calculateLosses());
}

/** The model's layers that declare weight penalties (for a stage's share of them, and describe()). */
export function penalizedLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.filter((layer) => tf.tidy(() => layer.calculateLosses().length) > 0);
}
