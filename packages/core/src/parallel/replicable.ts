import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { isLayersAdapter, type TrainableModel } from '../model/trainable-model';
import type { LossFn } from '../services/tokens';
import { losses, type LossName } from '../train/losses';
import { layersIn } from '../model/layers-in';

export const DATA_PARALLEL_PLUGIN = 'data-parallel';

/**
 * Why splitting a batch across replicas would change the math, if it would: a layer whose
 * training forward reads the whole batch or moves state the next step reads. Each replica
 * would normalise by its own part's statistics and move its own copy of the state.
 */
function batchCoupling(model: tf.LayersModel): string | undefined {
  for (const l of layersIn(model)) {
    const kind = l.getClassName();
    if (kind === 'BatchNormalization') {
      return `BatchNormalization '${l.name}' normalises by the batch's statistics in training and moves its running statistics: each replica would use its own part's`;
    }
    if ((l as { stateful?: boolean }).stateful === true) return `${kind} '${l.name}' is stateful: each call carries its state to the next`;
    // A trainable layer with weights it does not train keeps state its forward moves (running statistics, counters).
    if (l.trainable && l.nonTrainableWeights.length > 0) {
      return `${kind} '${l.name}' has non-trainable weights (${l.nonTrainableWeights.map((w) => w.originalName ?? w.name).join(', ')}) that its training forward may update: the replicas' updates would be lost`;
    }
  }
  return undefined;
}

/** The tfjs-layers model the replicas rebuild, or a refusal naming why there is none or why it cannot be split. */
export function replicableModel(model: TrainableModel): tf.LayersModel {
  const layersModel = model.layersModel;
  if (!layersModel || !isLayersAdapter(model)) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${DATA_PARALLEL_PLUGIN}: the trainer's model is a segment model${layersModel ? ' whose segments are not its tfjs-layers layers' : ''}; each replica worker rebuilds the model from its tfjs-layers JSON, which cannot carry hand-written segments. Pass a tf.LayersModel, or train without dataParallel.`,
    );
  }
  const why = batchCoupling(layersModel);
  if (why) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${DATA_PARALLEL_PLUGIN}: ${why}, so a split batch would not train as the whole batch does. Train this model without dataParallel (or use a per-sample normalisation such as layerNormalization).`,
    );
  }
  return layersModel;
}

/** The core loss name of `loss` (the trainer's resolved loss), or undefined when it is the user's own function. */
export function coreLossName(loss: LossFn): LossName | undefined {
  return (Object.keys(losses) as LossName[]).find((name) => losses[name] === loss);
}
