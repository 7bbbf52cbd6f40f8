import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, resolveLoss, TapfitError, Tokens, type LossFn, type LossSpec, type TapfitPlugin } from '@tapfit/core';

export interface LabelSmoothingOptions {
  /** Probability mass moved from the true class to all classes uniformly; in [0, 1). */
  epsilon: number;
}

function check(options: LabelSmoothingOptions): number {
  const e = options?.epsilon;
  if (typeof e !== 'number' || !(e >= 0 && e < 1)) {
    throw new TapfitError(ErrorCodes.CONFIG, `label-smoothing: option 'epsilon' must be a number in [0, 1) (got ${JSON.stringify(e)}). Typical: 0.1.`);
  }
  return e;
}

/** y_smooth = (1 - eps) * onehot(y) + eps / C, for class indices [N] or one-hot [N, C]. */
export function smoothLabels(yTrue: tf.Tensor, classes: number, epsilon: number): tf.Tensor {
  return tf.tidy(() => {
    const oneHot = yTrue.rank === 1 ? tf.oneHot(tf.cast(yTrue, 'int32'), classes) : yTrue;
    return tf.add(tf.mul(tf.cast(oneHot, 'float32'), 1 - epsilon), epsilon / classes);
  });
}

/** Functional twin: a loss that sees smoothed labels. */
export function withLabelSmoothing(loss: LossSpec | LossFn, options: LabelSmoothingOptions): LossFn {
  const epsilon = check(options);
  const inner = resolveLoss(loss);
  return (yTrue, yPred) => inner(smoothLabels(yTrue, yPred.shape[yPred.rank - 1]!, epsilon), yPred);
}

/**
 * Hook form: decorates the trainer's loss service (Tokens.Loss) in `apply`, so every
 * training step and evaluate() use smoothed labels. Stateless.
 */
export function labelSmoothing(options: LabelSmoothingOptions): TapfitPlugin {
  const epsilon = check(options);
  return {
    name: 'label-smoothing',
    core: '^0.1.0',
    apply({ services }) {
      services.decorate(Tokens.Loss, (loss) => withLabelSmoothing(loss, { epsilon }));
    },
  };
}

/** Entry point for `tapfit train` configs: ["@tapfit/example-plugin-label-smoothing", { "epsilon": 0.1 }]. */
export const tapfitPlugin = labelSmoothing;
