import * as tf from '@tensorflow/tfjs';

/*
 * model.fit's own "a fit is running" flag (`isTraining`, protected in tfjs-layers' types).
 * The trainer sets it on the models it trains, so model.fit refuses to start on them
 * meanwhile, and reads it to refuse a fit while model.fit (or another trainer) runs.
 */

/** The objects that carry the flag: a tf.Sequential delegates fit to its inner model. */
function flagHolders(model: tf.LayersModel): { isTraining?: boolean }[] {
  const inner = model instanceof tf.Sequential ? (model as unknown as { model?: tf.LayersModel }).model : undefined;
  return [model, ...(inner ? [inner] : [])] as unknown as { isTraining?: boolean }[];
}

export function isTraining(model: tf.LayersModel): boolean {
  return flagHolders(model).some((m) => m.isTraining === true);
}

export function markTraining(model: tf.LayersModel, on: boolean): void {
  for (const m of flagHolders(model)) m.isTraining = on;
}
