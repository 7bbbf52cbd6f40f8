import type { Worker } from 'node:worker_threads';

/**
 * Idle stage workers must not keep node running: a script that trains and forgets
 * close() would never exit. A call waiting for their replies must, or node could exit
 * mid-train with its promise never settled. So the workers are referenced while at least
 * one call runs, and unreferenced otherwise.
 */
export class KeepAlive {
  private running = 0;

  constructor(private readonly workers: readonly Worker[]) {}

  /** Lets node exit while no call runs (after start, when they are ready). */
  idle(): void {
    for (const w of this.workers) w.unref();
  }

  async during<T>(call: () => Promise<T>): Promise<T> {
    if (this.running++ === 0) for (const w of this.workers) w.ref();
    try {
      return await call();
    } finally {
      if (--this.running === 0) this.idle();
    }
  }
}
