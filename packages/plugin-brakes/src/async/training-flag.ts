import * as tf from '@tensorflow/tfjs';

/*
 * model.fit's own "a fit is running" flag (`isTraining`, protected in tfjs-layers' types),
 * which core's Trainer also sets and checks. asyncTrain sets it on the master model while it
 * runs, so model.fit, a Trainer's fit and a second asyncTrain refuse that model meanwhile
 * instead of interleaving their updates with its own. (A tf.Sequential's compile() builds a
 * new inner model with the flag down, so a model compiled during the run escapes model.fit's
 * check; the Trainer and asyncTrain read the outer model's flag too.)
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
