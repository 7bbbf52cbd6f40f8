/**
 * The one line the CLI prints for a tapfit error: `error [CODE]: message`. Errors are
 * recognised by their `TAPFIT_E_*` code, not by `instanceof TapfitError`, because a plugin
 * may bring its own copy of @tapfit/core whose TapfitError is a different class.
 * Undefined for any other error (a bug: the caller prints it with its stack).
 */
export function tapfitErrorLine(err: unknown): string | undefined {
  const { code, message } = (err ?? {}) as { code?: unknown; message?: unknown };
  return typeof code === 'string' && code.startsWith('TAPFIT_E_') ? `error [${code}]: ${String(message)}` : undefined;
}
