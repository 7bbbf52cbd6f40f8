import * as tf from '@tensorflow/tfjs';

/*
 * model.fit's own "a fit is running" flag (`isTraining`, protected in tfjs-layers' types).
 * The trainer sets it on the models it trains, so model.fit refuses to start on them
 * meanwhile, and reads it to refuse a fit while model.fit (or another trainer) runs;
 * asyncTrain (plugin-brakes) does the same for its master model. (A tf.Sequential's
 * compile() builds a new inner model with the flag down, so a model compiled meanwhile
 * escapes model.fit's check; the trainer and asyncTrain read the outer model's flag too.)
 */

/** The objects that carry the flag: a tf.Sequential delegates fit to its inner model. */
function flagHolders(model: tf.LayersModel): { isTraining?: boolean }[] {
  const inner = model instanceof tf.Sequential ? (model as unknown as { model?: tf.LayersModel }).model : undefined;
  return [model, ...(inner ? [inner] : [])] as unknown as { isTraining?: boolean }[];
}

/** Whether model.fit, a Trainer's fit or asyncTrain is training `model`. */
export function isModelTraining(model: tf.LayersModel): boolean {
  return flagHolders(model).some((m) => m.isTraining === true);
}

/** Sets or clears the flag (on a Sequential's inner model too). */
export function markModelTraining(model: tf.LayersModel, on: boolean): void {
  for (const m of flagHolders(model)) m.isTraining = on;
}
