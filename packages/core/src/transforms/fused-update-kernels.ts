/**
 * The fused update kernels' contract: fused-updates.ts calls them, a backend may
 * implement them (the wasm fast kernels do): names, inputs and attributes.
 */

/** inputs { x, y }, attrs { a, b } -> a x + b y. */
export const SCALED_SUM_KERNEL = 'TapfitScaledSum';

/** inputs { g, mu, nu }, attrs AdamCoefficients -> [mu', nu', direction]. */
export const ADAM_MOMENTS_KERNEL = 'TapfitAdamMoments';

export interface AdamCoefficients {
  b1: number;
  b2: number;
  /** Bias corrections: 1 / (1 - b1^t) and 1 / (1 - b2^t). */
  muScale: number;
  nuScale: number;
  eps: number;
}
