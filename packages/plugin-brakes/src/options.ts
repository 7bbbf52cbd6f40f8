import { z } from 'zod';
import { optionSchemas } from '@tapfit/core';

const { finite, fraction, nonNegative, positive, transformName, flag } = optionSchemas;

/** Options of the Adaptive Braking transform (docs/techniques.md §4.2). */
export interface AdaptiveBrakingOptions {
  /** m in v = m v + alpha g; in [0, 1). */
  momentum: number;
  /**
   * Braking strength: alpha = 1 - rho cos(g, v), in [1 - rho, 1 + rho]. In [0, 2];
   * default 1.5, chosen by the delay study (README, `npm run bench -- delay`).
   */
  rho?: number | undefined;
  /**
   * 'tensor' (default): one cosine per parameter tensor. 'global': one cosine over all
   * parameters concatenated, so one alpha for the whole step.
   */
  granularity?: 'tensor' | 'global' | undefined;
  /** Coupled L2 added by this transform: g = grad + weightDecay * w; default 0. */
  weightDecay?: number | undefined;
  /**
   * true (default): the decay term is part of g, so it enters the cosine and is scaled by
   * alpha. false: alpha comes from the loss gradient alone and scales only it:
   * v = m v + alpha grad + weightDecay w.
   */
  applyToWeightDecay?: boolean | undefined;
  /** The cosine is <g, v> / max(||g|| ||v||, eps); a zero g or v gives cosine 0, alpha 1. Default 1e-16. */
  eps?: number | undefined;
  /** Names the transform's slot in the chain state; default 'momentum' (the member it replaces). */
  name?: string | undefined;
}

export type ResolvedBrakingOptions = Required<AdaptiveBrakingOptions>;

/** The paper's value could not be read; 1.5 did best on held-out data at D = 32 in the delay study. */
export const DEFAULT_RHO = 1.5;
export const DEFAULT_EPS = 1e-16;

const rho = finite.min(0, 'must be in [0, 2]').max(2, 'must be in [0, 2]');
const granularity = z.enum(['tensor', 'global'], { error: "must be 'tensor' or 'global'" });

/** The knobs shared by the transform and the plugin (everything but momentum and name). */
export const brakingKnobs = {
  rho: rho.default(DEFAULT_RHO),
  granularity: granularity.default('tensor'),
  weightDecay: nonNegative.default(0),
  applyToWeightDecay: flag.default(true),
  eps: positive.default(DEFAULT_EPS),
};

export const adaptiveBrakingSchema = z.strictObject({
  ...brakingKnobs,
  momentum: z.number({ error: 'is required: the m of v = m v + alpha g, in [0, 1)' }).pipe(fraction),
  name: transformName.default('momentum'),
});
