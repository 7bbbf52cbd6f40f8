/**
 * How long fit() runs steps without letting the event loop turn. A training step is
 * synchronous, and awaiting settled promises never lets timers, signal handlers (a
 * Ctrl-C handler that calls stop()) or I/O run. A turn itself costs microseconds, but
 * what it lets run (timers other code left pending) lands inside the fit: measured with
 * the core-overhead bench, turning every 50 ms made short fits 2 % slower than model.fit;
 * once a second from the fit's start keeps stop() prompt without that cost.
 */
const MAX_BUSY_MS = 1000;

const turn: () => Promise<void> =
  typeof setImmediate === 'function' ? () => new Promise((resolve) => setImmediate(resolve)) : () => new Promise((resolve) => setTimeout(resolve, 0));

/** Lets the event loop turn once MAX_BUSY_MS have passed since the fit started or last turned. */
export class EventLoopTurns {
  private last = performance.now();

  /** A fit starts: it may run MAX_BUSY_MS before its first turn. */
  restart(): void {
    this.last = performance.now();
  }

  async maybeTurn(): Promise<void> {
    if (performance.now() - this.last < MAX_BUSY_MS) return;
    await turn();
    this.last = performance.now();
  }
}
