import { z } from 'zod';
import { addDecayedWeights } from './add-decayed-weights';
import { chain, type Chain } from './chain';
import { momentum } from './momentum';
import { finite, fraction, learningRate, nonNegative, parseOptions, transformName } from '../options';
import { scaleByAdam } from './scale-by-adam';
import { scaleByAdadelta } from './scale-by-adadelta';
import { scaleByAdagrad } from './scale-by-adagrad';
import { scaleByAdamax } from './scale-by-adamax';
import { scaleByRms } from './scale-by-rms';
import { scaleByLearningRate } from './scale-by-learning-rate';
import type { Schedule, StepTransform } from './types';

// Conventional optimizers as chains with conventional member names, so plugins and
// checkpoints can address 'weightDecay', 'momentum', 'adam' and 'lr'. Members whose
// knob is 0 are left out (no weight decay term, no velocity buffer), as in PyTorch.

export interface SgdOptions {
  lr: number | Schedule;
  /** PyTorch-form momentum m (docs/techniques.md §0.1); default 0 (no 'momentum' member). */
  momentum?: number | undefined;
  /** d in v = m v + (1 - d) g; ignored without momentum, as torch.optim.SGD ignores it. */
  dampening?: number | undefined;
  nesterov?: boolean | undefined;
  /** Coupled L2: lambda * w is added to the gradient before momentum; default 0. */
  weightDecay?: number | undefined;
  /** Default 'sgd'. */
  name?: string | undefined;
}

/** SGD(M) as torch.optim.SGD: chain('sgd', weightDecay?, momentum?, lr). */
export function sgd(options: SgdOptions): Chain {
  const o = parseOptions(
    'sgd',
    z.strictObject({
      lr: learningRate,
      momentum: fraction.default(0),
      // Checked here too: without momentum no member would check it.
      dampening: finite.min(0, 'must be in [0, 1]').max(1, 'must be in [0, 1]').optional(),
      nesterov: z.boolean().optional(),
      weightDecay: nonNegative.default(0),
      name: transformName.default('sgd'),
    }),
    options,
  );
  // Dampening alone adds no member: with momentum 0, PyTorch's SGD keeps no buffer and ignores it.
  const needsMomentum = o.momentum > 0 || o.nesterov === true;
  return chain(
    o.name,
    ...optional(o.weightDecay > 0 && addDecayedWeights(o.weightDecay)),
    ...optional(needsMomentum && momentum({ momentum: o.momentum, dampening: o.dampening, nesterov: o.nesterov })),
    scaleByLearningRate(o.lr),
  );
}

export interface AdamOptions {
  lr: number | Schedule;
  b1?: number | undefined;
  b2?: number | undefined;
  eps?: number | undefined;
  /** Default 'adam' for adam(), 'adamw' for adamw(). */
  name?: string | undefined;
}

/**
 * Adam as torch.optim.Adam: chain('adam', weightDecay?, adam, lr). Its `weightDecay` is
 * coupled L2 (added to the gradient); for decoupled decay use adamw.
 */
export function adam(options: AdamOptions & { weightDecay?: number | undefined }): Chain {
  const o = parseOptions('adam', adamSchema('adam', 0), options);
  return chain(
    o.name,
    ...optional(o.weightDecay > 0 && addDecayedWeights(o.weightDecay)),
    scaleByAdam({ b1: o.b1, b2: o.b2, eps: o.eps }),
    scaleByLearningRate(o.lr),
  );
}

/**
 * AdamW as torch.optim.AdamW: chain('adamw', adam, weightDecay, lr), so the step is
 * w -= lr * (adam direction + weightDecay * w). Default weightDecay 0.01 (PyTorch's).
 */
export function adamw(options: AdamOptions & { weightDecay?: number | undefined }): Chain {
  const o = parseOptions('adamw', adamSchema('adamw', 0.01), options);
  return chain(
    o.name,
    scaleByAdam({ b1: o.b1, b2: o.b2, eps: o.eps }),
    ...optional(o.weightDecay > 0 && addDecayedWeights(o.weightDecay)),
    scaleByLearningRate(o.lr),
  );
}

export interface RmspropOptions {
  lr: number | Schedule;
  /** Decay of the running mean of g^2; default 0.9. */
  decay?: number | undefined;
  /** Heavy-ball momentum on the scaled gradient; default 0 (no 'momentum' member). */
  momentum?: number | undefined;
  /** Default 1e-7 (the float32 backends' epsilon, tfjs's default). */
  eps?: number | undefined;
  /** Default 'rmsprop'. */
  name?: string | undefined;
}

/**
 * RMSProp as tf.train.rmsprop (not centered): chain('rmsprop', rms, momentum?, lr), so
 * w -= lr v with v = m v + g / sqrt(nu + eps). Adaptive Braking can replace its 'momentum'.
 */
export function rmsprop(options: RmspropOptions): Chain {
  const o = parseOptions(
    'rmsprop',
    z.strictObject({
      lr: learningRate,
      decay: fraction.default(0.9),
      momentum: fraction.default(0),
      eps: nonNegative.default(1e-7),
      name: transformName.default('rmsprop'),
    }),
    options,
  );
  return chain(
    o.name,
    scaleByRms({ decay: o.decay, eps: o.eps }),
    ...optional(o.momentum > 0 && momentum({ momentum: o.momentum })),
    scaleByLearningRate(o.lr),
  );
}

/** Adagrad as tf.train.adagrad: chain('adagrad', adagrad, lr). */
export function adagrad(options: { lr: number | Schedule; initialAccumulatorValue?: number | undefined; eps?: number | undefined; name?: string | undefined }): Chain {
  const o = parseOptions(
    'adagrad',
    z.strictObject({
      lr: learningRate,
      initialAccumulatorValue: nonNegative.default(0.1),
      eps: nonNegative.default(1e-7),
      name: transformName.default('adagrad'),
    }),
    options,
  );
  return chain(o.name, scaleByAdagrad({ initialAccumulatorValue: o.initialAccumulatorValue, eps: o.eps }), scaleByLearningRate(o.lr));
}

/** Adadelta as tf.train.adadelta (tfjs's order of updates, see scaleByAdadelta): chain('adadelta', adadelta, lr). */
export function adadelta(options: { lr: number | Schedule; rho?: number | undefined; eps?: number | undefined; name?: string | undefined }): Chain {
  const o = parseOptions(
    'adadelta',
    z.strictObject({
      lr: learningRate,
      rho: fraction.default(0.95),
      eps: nonNegative.default(1e-7),
      name: transformName.default('adadelta'),
    }),
    options,
  );
  return chain(o.name, scaleByAdadelta({ rho: o.rho, eps: o.eps }), scaleByLearningRate(o.lr));
}

/** Adamax as tf.train.adamax (no learning-rate decay; use a schedule): chain('adamax', adamax, lr). */
export function adamax(options: { lr: number | Schedule; b1?: number | undefined; b2?: number | undefined; eps?: number | undefined; name?: string | undefined }): Chain {
  const o = parseOptions(
    'adamax',
    z.strictObject({
      lr: learningRate,
      b1: fraction.default(0.9),
      b2: fraction.default(0.999),
      eps: nonNegative.default(1e-7),
      name: transformName.default('adamax'),
    }),
    options,
  );
  return chain(o.name, scaleByAdamax({ b1: o.b1, b2: o.b2, eps: o.eps }), scaleByLearningRate(o.lr));
}

// Ranges of b1, b2, eps, momentum, dampening are checked again by the member transforms;
// here they are listed so a misspelt option fails with the optimizer's name.
function adamSchema(name: string, weightDecay: number) {
  return z.strictObject({
    lr: learningRate,
    b1: fraction.optional(),
    b2: fraction.optional(),
    eps: nonNegative.optional(),
    weightDecay: nonNegative.default(weightDecay),
    name: transformName.default(name),
  });
}

function optional(t: StepTransform | false): StepTransform[] {
  return t ? [t] : [];
}
