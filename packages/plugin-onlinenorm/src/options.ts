import { ErrorCodes, suggest, TapfitError } from '@tapfit/core';
import type { RecurrenceMode } from './recurrences';

/** Error compensation applied after the affine map (docs/techniques.md §6.4). */
export type ErrorCompensation = 'ac' | 'ls' | 'none';

/** The knobs of one Online Normalization layer; every field is optional. */
export interface OnlineNormOptions {
  /** Forward decay of the running mean/variance, in (0, 1]; 1 freezes them. Default 0.999. */
  alphaFwd?: number | undefined;
  /** Backward decay of the control accumulators u, v, in (0, 1]; 1 turns the control off. Default 0.99. */
  alphaBkw?: number | undefined;
  /** Added to the running variance before the square root. Default 1e-5. */
  epsilon?: number | undefined;
  /** Learn a per-channel scale gamma (init 1) and shift beta (init 0). Default true. */
  affine?: boolean | undefined;
  /**
   * 'ac' activation clamping (the reference library's default), 'ls' layer scaling (the
   * paper's experiments), 'none'. Default 'ac'.
   */
  ecm?: ErrorCompensation | undefined;
  /** Activation clamping bound c: outputs are clipped to [-c, c]. Default 5. */
  clamp?: number | undefined;
  /** Layer scaling's epsilon inside the per-sample RMS. Default 1e-5. */
  epsLs?: number | undefined;
  /**
   * Check the running statistics for NaN/Inf every this many training calls (0: never).
   * Host recurrences check their own arrays (no read-back); device recurrences keep the
   * check on the device, read once per step for all layers (README, Performance). Default 1.
   */
  checkFiniteEvery?: number | undefined;
  /**
   * Where the within-batch recurrences run: 'host' (a float64 loop after reading [N, C]
   * summaries back; fastest on cpu/wasm), 'device' (vectorised scans, no read-back; for
   * GPU backends) or 'auto' (host on cpu/wasm, device elsewhere). Same results. Default 'auto'.
   */
  recurrences?: RecurrenceMode | undefined;
}

export type ResolvedOnlineNormOptions = Required<OnlineNormOptions>;

export const DEFAULTS: ResolvedOnlineNormOptions = {
  alphaFwd: 0.999,
  alphaBkw: 0.99,
  epsilon: 1e-5,
  affine: true,
  ecm: 'ac',
  clamp: 5,
  epsLs: 1e-5,
  checkFiniteEvery: 1,
  recurrences: 'auto',
};

const KNOWN = new Set(Object.keys(DEFAULTS));

/**
 * Fill defaults and validate; `who` names the layer or plugin in error messages, and
 * `alsoKnown` the caller's own keys (replace's `replace`, `copyStatistics`), which an
 * unknown key is matched against too.
 */
export function resolveOptions(options: OnlineNormOptions = {}, who = 'onlineNorm', alsoKnown: readonly string[] = []): ResolvedOnlineNormOptions {
  for (const key of Object.keys(options)) {
    if (!KNOWN.has(key)) throw configError(who, key, `is not an option${suggest(key, [...alsoKnown, ...KNOWN])}`);
  }
  const resolved: ResolvedOnlineNormOptions = { ...DEFAULTS };
  for (const [key, value] of Object.entries(options)) {
    if (value !== undefined) (resolved as unknown as Record<string, unknown>)[key] = value;
  }
  const { alphaFwd, alphaBkw, epsilon, affine, ecm, clamp, epsLs, checkFiniteEvery, recurrences } = resolved;
  for (const [key, alpha] of [['alphaFwd', alphaFwd], ['alphaBkw', alphaBkw]] as const) {
    if (typeof alpha !== 'number' || !(alpha > 0 && alpha <= 1)) {
      throw configError(who, key, `must be in (0, 1] (got ${alpha}); typical values are 0.99-0.9999, and 1 disables the ${key === 'alphaFwd' ? 'statistics update' : 'gradient control'}`);
    }
  }
  for (const [key, value] of [['epsilon', epsilon], ['clamp', clamp], ['epsLs', epsLs]] as const) {
    if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) {
      throw configError(who, key, `must be a finite number > 0 (got ${value})`);
    }
  }
  if (typeof affine !== 'boolean') throw configError(who, 'affine', `must be true or false (got ${affine})`);
  if (ecm !== 'ac' && ecm !== 'ls' && ecm !== 'none') {
    throw configError(who, 'ecm', `must be 'ac' (activation clamping), 'ls' (layer scaling) or 'none' (got ${JSON.stringify(ecm)})`);
  }
  if (!Number.isInteger(checkFiniteEvery) || checkFiniteEvery < 0) {
    throw configError(who, 'checkFiniteEvery', `must be a whole number >= 0, 0 disables the check (got ${checkFiniteEvery})`);
  }
  if (recurrences !== 'auto' && recurrences !== 'host' && recurrences !== 'device') {
    throw configError(who, 'recurrences', `must be 'auto', 'host' or 'device' (got ${JSON.stringify(recurrences)})`);
  }
  return resolved;
}

export function configError(who: string, option: string, problem: string): TapfitError {
  return new TapfitError(ErrorCodes.CONFIG, `${who}: option '${option}' ${problem}`);
}
