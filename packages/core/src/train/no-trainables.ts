import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { modelVariables, type TrainableModel } from '../model/trainable-model';

/** Up to four names, and how many more. */
const few = (names: readonly string[]): string => names.slice(0, 4).join(', ') + (names.length > 4 ? ` and ${names.length - 4} more` : '');

/**
 * Layers (nested models searched) that hold weights. A nested model frozen as a whole is
 * itself the layer to name: its `trainable = false` freezes its layers' weights but leaves
 * their own `trainable` flags true.
 */
function layersWithWeights(layer: tf.layers.Layer): tf.layers.Layer[] {
  if (layer instanceof tf.LayersModel) return layer.trainable ? layer.layers.flatMap(layersWithWeights) : layer.weights.length ? [layer] : [];
  return layer.weights.length ? [layer] : [];
}

/**
 * Training a model none of whose variables is trainable would end in tfjs's own
 * "variableGrads() expects at least one of the input variables to be trainable": this says
 * why (every layer frozen, or no weights at all) and what to set instead. `when` says where
 * the trainer noticed ('at setup', or that the set became empty since).
 */
export function noTrainablesError(model: TrainableModel, when: string): TapfitError {
  const layers = model.layersModel;
  if (!modelVariables(model).length) {
    return new TapfitError(ErrorCodes.CONFIG, `trainer: the model has no weights, so there is nothing to train (${when}). Give it a layer with weights (e.g. tf.layers.dense).`);
  }
  if (layers) {
    const frozen = layersWithWeights(layers).filter((l) => !l.trainable || !layers.trainable);
    return new TapfitError(
      ErrorCodes.CONFIG,
      `trainer: the model has no trainable variables ${when}: ${layers.trainable ? `every layer with weights has trainable = false (${few(frozen.map((l) => l.name))})` : 'model.trainable is false'}. ` +
        'Set `layer.trainable = true` on the layers to train (e.g. the last ones, for fine-tuning), or `model.trainable = true`, then call fit again: the trainer picks the new set up. ' +
        "The trainer sets up for training, so evaluate, predict and save on a trainer are refused too while nothing is trainable: use the model's own model.evaluate, model.predict and model.save for a frozen model.",
    );
  }
  return new TapfitError(
    ErrorCodes.CONFIG,
    `trainer: the segment model has no trainable variables ${when}: every variable in its segments' params has trainable = false. ` +
      'Make the ones to train with `tf.variable(value, true)` (or set `variable.trainable = true`), then call fit again.',
  );
}
