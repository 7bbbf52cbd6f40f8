import { z } from 'zod';
import { addDecayedWeights } from './add-decayed-weights';
import { chain, type Chain } from './chain';
import { momentum } from './momentum';
import { fraction, learningRate, nonNegative, parseOptions, transformName } from '../options';
import { scaleByAdam } from './scale-by-adam';
import { scaleByLearningRate } from './scale-by-learning-rate';
import type { Schedule, StepTransform } from './types';

// Conventional optimizers as chains with conventional member names, so plugins and
// checkpoints can address 'weightDecay', 'momentum', 'adam' and 'lr'. Members whose
// knob is 0 are left out (no weight decay term, no velocity buffer), as in PyTorch.

export interface SgdOptions {
  lr: number | Schedule;
  /** PyTorch-form momentum m (docs/techniques.md §0.1); default 0 (no 'momentum' member). */
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  /** Coupled L2: lambda * w is added to the gradient before momentum; default 0. */
  weightDecay?: number;
  /** Default 'sgd'. */
  name?: string;
}

/** SGD(M) as torch.optim.SGD: chain('sgd', weightDecay?, momentum?, lr). */
export function sgd(options: SgdOptions): Chain {
  const o = parseOptions(
    'sgd',
    z.strictObject({
      lr: learningRate,
      momentum: fraction.default(0),
      dampening: z.number().optional(),
      nesterov: z.boolean().optional(),
      weightDecay: nonNegative.default(0),
      name: transformName.default('sgd'),
    }),
    options,
  );
  const needsMomentum = o.momentum > 0 || o.nesterov === true || o.dampening !== undefined;
  return chain(
    o.name,
    ...optional(o.weightDecay > 0 && addDecayedWeights(o.weightDecay)),
    ...optional(needsMomentum && momentum({ momentum: o.momentum, dampening: o.dampening, nesterov: o.nesterov })),
    scaleByLearningRate(o.lr),
  );
}

export interface AdamOptions {
  lr: number | Schedule;
  b1?: number;
  b2?: number;
  eps?: number;
  /** Default 'adam' for adam(), 'adamw' for adamw(). */
  name?: string;
}

/**
 * Adam as torch.optim.Adam: chain('adam', weightDecay?, adam, lr). Its `weightDecay` is
 * coupled L2 (added to the gradient); for decoupled decay use adamw.
 */
export function adam(options: AdamOptions & { weightDecay?: number }): Chain {
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
export function adamw(options: AdamOptions & { weightDecay?: number }): Chain {
  const o = parseOptions('adamw', adamSchema('adamw', 0.01), options);
  return chain(
    o.name,
    scaleByAdam({ b1: o.b1, b2: o.b2, eps: o.eps }),
    ...optional(o.weightDecay > 0 && addDecayedWeights(o.weightDecay)),
    scaleByLearningRate(o.lr),
  );
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
