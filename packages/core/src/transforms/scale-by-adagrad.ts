import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { mapNamed, type NamedTensors } from '../tensors';
import { bufferFor, withUnchangedBuffers } from './buffers';
import { nonNegative, parseOptions, transformName } from '../options';
import type { StepTransform } from './types';

/** The sum of squared gradients so far (plus the initial value). */
export type ScaleByAdagradState = { sum: NamedTensors };

export interface ScaleByAdagradOptions {
  /** Where the sum of g^2 starts; default 0.1 (tfjs's adagrad). */
  initialAccumulatorValue?: number | undefined;
  /** Added to the sum inside the square root; default 1e-7 (the float32 backends' epsilon). */
  eps?: number | undefined;
  /** Default 'adagrad'. */
  name?: string | undefined;
}

/** Adagrad's direction as tfjs-core computes it: sum += g^2, emit g / sqrt(sum + eps). */
export function scaleByAdagrad(options: ScaleByAdagradOptions = {}): StepTransform<ScaleByAdagradState> {
  const { initialAccumulatorValue, eps, name } = parseOptions(
    'scaleByAdagrad',
    z.strictObject({
      initialAccumulatorValue: nonNegative.default(0.1),
      eps: nonNegative.default(1e-7),
      name: transformName.default('adagrad'),
    }),
    options,
  );
  return {
    name,
    hyperparams: { initialAccumulatorValue, eps },
    init: (params) => ({ sum: mapNamed(params, (p) => tf.fill(p.shape, initialAccumulatorValue)) }),
    update(updates, state) {
      const sum = mapNamed(updates, (g, key) => tf.add(bufferFor(state.sum, key, g, `scaleByAdagrad('${name}') sum`), tf.square(g)));
      return [mapNamed(updates, (g, key) => tf.div(g, tf.sqrt(tf.add(sum[key], eps)))), { sum: withUnchangedBuffers(state.sum, sum) }];
    },
  };
}
