/**
 * Every error tapfit raises on purpose. `code` is stable (match on it, not on the
 * message); the message names the plugin / hook / option involved and the fix.
 */
export class TapfitError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'TapfitError';
  }
}

/** Stable error codes. */
export const ErrorCodes = {
  BACKEND: 'TAPFIT_E_BACKEND',
  CONFIG: 'TAPFIT_E_CONFIG',
  PLUGIN_CORE_RANGE: 'TAPFIT_E_PLUGIN_CORE_RANGE',
  PLUGIN_DUPLICATE: 'TAPFIT_E_PLUGIN_DUPLICATE',
  PLUGIN_REQUIRES: 'TAPFIT_E_PLUGIN_REQUIRES',
  PLUGIN_CONFLICTS: 'TAPFIT_E_PLUGIN_CONFLICTS',
  PLUGIN_PROVIDES: 'TAPFIT_E_PLUGIN_PROVIDES',
  PLUGIN_INVALID: 'TAPFIT_E_PLUGIN_INVALID',
  PLUGIN_FAILED: 'TAPFIT_E_PLUGIN_FAILED',
  ORDER_UNKNOWN: 'TAPFIT_E_ORDER_UNKNOWN',
  ORDER_CYCLE: 'TAPFIT_E_ORDER_CYCLE',
  HOOKS_SEALED: 'TAPFIT_E_HOOKS_SEALED',
  SHAPE: 'TAPFIT_E_SHAPE',
  NON_FINITE: 'TAPFIT_E_NON_FINITE',
  NEEDS_CHAIN: 'TAPFIT_E_NEEDS_CHAIN',
  STATE: 'TAPFIT_E_STATE',
  CHECKPOINT: 'TAPFIT_E_CHECKPOINT',
  MEMORY: 'TAPFIT_E_MEMORY',
  /** Class labels outside the model's classes (sparse index not in [0, C), or a one-hot row that is not a distribution). */
  LABELS: 'TAPFIT_E_LABELS',
  /** A gradient the backward cannot compute (no gradient function registered for a kernel). */
  GRADIENT: 'TAPFIT_E_GRADIENT',
  /** The installed tfjs lacks the internals tapfit is written against (another release than 4.22.x). */
  TFJS_INTERNALS: 'TAPFIT_E_TFJS_INTERNALS',
  /** Two copies of @tapfit/core or of a tfjs package are loaded (a plugin brought its own instead of using peers). */
  DUPLICATE_PACKAGE: 'TAPFIT_E_DUPLICATE_PACKAGE',
  /** A check of the testing kit failed (conformance, gradient check, leak check). */
  CHECK: 'TAPFIT_E_CHECK',
} as const;

/** A plugin's code threw: the error names the plugin and where (`hook 'backward'`, `dispose()`), the original as `cause`. */
export function pluginCallFailure(plugin: string, where: string, err: unknown): TapfitError {
  const msg = err instanceof Error ? err.message : String(err);
  return new TapfitError(ErrorCodes.PLUGIN_FAILED, `plugin '${plugin}' failed in ${where}: ${msg}`, { cause: err });
}
