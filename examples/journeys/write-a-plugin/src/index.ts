import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, Stage, TapfitError, type TapfitPlugin } from '@tapfit/core';

/** Scales every gradient by `factor` before the update chain sees it. */
export function gradientScale(options: { factor: number }): TapfitPlugin {
  if (!(options.factor > 0)) throw new TapfitError(ErrorCodes.CONFIG, `gradient-scale: option 'factor' must be > 0 (got ${options.factor}).`);
  return {
    name: 'gradient-scale',
    core: '^0.1.0', // the @tapfit/core versions you support
    requires: [],
    conflicts: [], // other plugins' names
    provides: [], // services it replaces, e.g. [Tokens.Backprop]
    apply({ hooks }) {
      hooks.backward.tap({ stage: Stage.TRANSFORM }, (grads) => grads && Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, tf.mul(g, options.factor)])));
    },
  };
}

export const tapfitPlugin = gradientScale; // lets `tapfit train` configs load the package
