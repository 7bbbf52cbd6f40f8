import * as tf from '@tensorflow/tfjs';
import { modelVariables, type TrainableModel } from '../model/trainable-model';
import type { TrainerOptions } from '../train/trainer';

/**
 * Frees a model the kit built or was handed fresh. `trainer.dispose()` leaves the model in
 * its options to the caller, so without this every kit trainer would leave its weights behind.
 */
export function disposeModel(model: TrainableModel | tf.LayersModel): void {
  if (model instanceof tf.LayersModel) model.dispose();
  else if (model.dispose) model.dispose();
  else if (model.layersModel) model.layersModel.dispose();
  else tf.dispose(modelVariables(model)); // a plain segment model: its variables are all it holds
}

/** Frees the model and a `tf.train` optimizer of trainer options the kit owns (the trainer leaves both to the caller). */
export function disposeTrainerInputs(options: Pick<TrainerOptions, 'model' | 'optimizer'>): void {
  disposeModel(options.model);
  if (options.optimizer instanceof tf.Optimizer) options.optimizer.dispose();
}
