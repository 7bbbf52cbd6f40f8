import * as tf from '@tensorflow/tfjs';

/** One constrained weight: the variable the updates write and the layer's projection. */
interface Constrained {
  variable: tf.Variable;
  project: (w: tf.Tensor) => tf.Tensor;
}

/**
 * The constraints a tfjs-layers model declares (`kernelConstraint: 'maxNorm'`,
 * `biasConstraint`, ...): a function that projects the constrained weights among `updated`
 * (the variables a step has just written, by name) back onto their sets, or null when the
 * model declares none. Keras applies a weight's constraint after every optimizer update of
 * that weight; tfjs's model.fit never does, because its optimizers write the variables
 * directly and only a layer weight's own `write()` projects (README, "fit, the model.fit
 * way").
 */
export function layersConstraints(model: tf.LayersModel | undefined): ((updated: Readonly<Record<string, unknown>>) => void) | null {
  if (!model) return null;
  const constrained: Constrained[] = [];
  for (const w of model.trainableWeights) {
    const constraint = (w as { constraint?: { apply(w: tf.Tensor): tf.Tensor } | null }).constraint;
    if (constraint) constrained.push({ variable: w.read() as tf.Variable, project: (x) => constraint.apply(x) });
  }
  if (!constrained.length) return null;
  return (updated) => {
    for (const { variable, project } of constrained) {
      if (!(variable.name in updated)) continue; // no update this step: already in its set
      const projected = tf.tidy(() => project(variable));
      variable.assign(projected);
      projected.dispose();
    }
  };
}
