import * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import { mapNamed, zerosLikeNamed, type NamedTensors } from '../tensors';
import { bufferFor, withUnchangedBuffers } from './buffers';
import { fraction, nonNegative, parseOptions, transformName } from '../options';
import type { StepTransform } from './types';

/** Running means of squared gradients and of squared updates. */
export type ScaleByAdadeltaState = { accGrad: NamedTensors; accUpdate: NamedTensors };

export interface ScaleByAdadeltaOptions {
  /** Decay of both running means; default 0.95 (tfjs's adadelta). */
  rho?: number | undefined;
  /** Added inside both square roots; default 1e-7 (the float32 backends' epsilon). */
  eps?: number | undefined;
  /** Default 'adadelta'. */
  name?: string | undefined;
}

/**
 * Adadelta's direction exactly as tfjs-core 4.22 computes it:
 * d = sqrt(accUpdate + eps) / sqrt(accGrad + eps) * g, then accGrad = rho accGrad + (1 - rho) g^2
 * and accUpdate = rho accUpdate + (1 - rho) d^2; emit d. The denominator uses accGrad from
 * before this step (Zeiler's paper and Keras use the updated one), so the first step
 * emits g itself; tapfit follows tfjs so that `optimizer: 'adadelta'` trains as
 * `model.compile({ optimizer: 'adadelta' })` does.
 */
export function scaleByAdadelta(options: ScaleByAdadeltaOptions = {}): StepTransform<ScaleByAdadeltaState> {
  const { rho, eps, name } = parseOptions(
    'scaleByAdadelta',
    z.strictObject({ rho: fraction.default(0.95), eps: nonNegative.default(1e-7), name: transformName.default('adadelta') }),
    options,
  );
  return {
    name,
    hyperparams: { rho, eps },
    init: (params) => ({ accGrad: zerosLikeNamed(params), accUpdate: zerosLikeNamed(params) }),
    update(updates, state) {
      const what = `scaleByAdadelta('${name}')`;
      const out = mapNamed(updates, (g, key) => {
        const accGrad = bufferFor(state.accGrad, key, g, `${what} accGrad`);
        const accUpdate = bufferFor(state.accUpdate, key, g, `${what} accUpdate`);
        return tf.mul(tf.div(tf.sqrt(tf.add(accUpdate, eps)), tf.sqrt(tf.add(accGrad, eps))), g);
      });
      const accGrad = mapNamed(updates, (g, key) => tf.add(tf.mul(state.accGrad[key], rho), tf.mul(tf.square(g), 1 - rho)));
      const accUpdate = mapNamed(out, (d, key) => tf.add(tf.mul(state.accUpdate[key], rho), tf.mul(tf.square(d), 1 - rho)));
      return [out, { accGrad: withUnchangedBuffers(state.accGrad, accGrad), accUpdate: withUnchangedBuffers(state.accUpdate, accUpdate) }];
    },
  };
}
