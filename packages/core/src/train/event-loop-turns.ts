/**
 * How long fit() runs steps without letting the event loop turn. A training step is
 * synchronous, and awaiting settled promises never lets timers, signal handlers (a
 * Ctrl-C handler that calls stop()) or I/O run; model.fit yields per batch for the same
 * reason. Turning at most every 50 ms costs a few microseconds per turn.
 */
const MAX_BUSY_MS = 50;

const turn: () => Promise<void> =
  typeof setImmediate === 'function' ? () => new Promise((resolve) => setImmediate(resolve)) : () => new Promise((resolve) => setTimeout(resolve, 0));

/** Lets the event loop turn once MAX_BUSY_MS have passed since the last turn. */
export class EventLoopTurns {
  private last = performance.now();

  async maybeTurn(): Promise<void> {
    if (performance.now() - this.last < MAX_BUSY_MS) return;
    await turn();
    this.last = performance.now();
  }
}
