import { constants } from 'node:os';

export interface SignalStop {
  /** Aborts at the first SIGINT or SIGTERM; its reason is the signal's name. */
  readonly signal: AbortSignal;
  /**
   * After a signal: ends the process by that same signal, so that the shell sees what it
   * saw before the CLI handled signals (exit status 130 for SIGINT, 143 for SIGTERM) and
   * returns true (do nothing more: the process is ending). False when no signal came.
   */
  endIfInterrupted(): boolean;
  /** Stops the run as that signal would (a closed output pipe counts as SIGPIPE). */
  interrupt(sig: NodeJS.Signals): void;
}

/**
 * Ctrl-C (SIGINT) or SIGTERM while `tapfit train` runs: the first aborts `signal` (the run
 * stops after the current batch, saves a checkpoint and restores the terminal, then the
 * caller calls endIfInterrupted); a second one ends the process at once.
 */
export function stopOnSignals(signals: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM']): SignalStop {
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (controller.signal.aborted) endBy(sig);
    else controller.abort(sig);
  };
  const endBy = (sig: NodeJS.Signals) => {
    for (const s of signals) process.off(s, onSignal);
    // Node ignores SIGPIPE: end with the status a shell shows for it.
    if (sig === 'SIGPIPE') process.exit(128 + constants.signals.SIGPIPE);
    // With no listener left, node's default action for the signal ends the process.
    process.kill(process.pid, sig);
    // Still running (someone else listens for it): exit with the status a shell would show.
    setTimeout(() => process.exit(128 + constants.signals[sig]), 1000);
  };
  for (const s of signals) process.on(s, onSignal);
  return {
    signal: controller.signal,
    endIfInterrupted() {
      if (!controller.signal.aborted) return false;
      endBy(controller.signal.reason as NodeJS.Signals);
      return true;
    },
    interrupt: onSignal,
  };
}
