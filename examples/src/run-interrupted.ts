/**
 * What runConfig rejects with when its `interrupt` signal aborted: the run stopped early
 * on purpose (it has logged where it stopped and what it saved), so this is no error to
 * print. `signal` is the abort reason (the CLI's: 'SIGINT' or 'SIGTERM').
 */
export class RunInterrupted extends Error {
  constructor(readonly signal: string) {
    super(`run interrupted (${signal})`);
    this.name = 'RunInterrupted';
  }
}
