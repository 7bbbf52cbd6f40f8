import { ErrorCodes, TapfitError } from '../errors';

/** The plugin methods the core calls synchronously, and how to do their async work instead. */
const FIX: Record<'apply' | 'checkState' | 'loadState' | 'dispose', string> = {
  apply: "make apply synchronous: tap hooks and register services in apply, and do async work (reading files, fetching) in a 'setup' tap, which may return a promise",
  checkState: 'make checkState synchronous: inspect the state and throw to refuse it (a promise would be awaited by nothing, so a refusal would come after the resume went ahead)',
  loadState: 'make loadState synchronous: restore from the given state and its tensors; fetch anything else before (in a setup tap)',
  dispose: 'make dispose synchronous: free tensors and stop timers in it; await async cleanup yourself before calling trainer.dispose()',
};

/**
 * The core calls `apply`/`checkState`/`loadState`/`dispose` synchronously. An `async` one
 * (JavaScript, or TypeScript that casts) returns a promise nothing waits for: its taps
 * land late or never, and its refusal would come after the work it refused. Refuses such a
 * result naming the plugin and the fix, and marks the promise handled so its later
 * rejection does not crash the process.
 */
export function refusePromise(result: unknown, plugin: string, method: keyof typeof FIX): void {
  const then = (result as { then?: unknown } | null | undefined)?.then;
  if (typeof then !== 'function') return;
  (result as PromiseLike<unknown>).then(undefined, () => undefined); // refused below: its rejection is not left unhandled
  throw new TapfitError(
    ErrorCodes.PLUGIN_INVALID,
    `plugin '${plugin}': ${method}() returned a promise, but the trainer calls ${method}() synchronously and waits for nothing. Fix: ${FIX[method]}.`,
  );
}
