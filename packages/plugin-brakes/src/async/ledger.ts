/**
 * Request ids for gradients, so that each one is applied at most once: an id is issued
 * to one worker with each weights snapshot and accepted once, from that worker only.
 * A repeated, unknown or foreign id is refused.
 */
export class GradientLedger {
  private next = 0;
  private readonly open = new Map<number, number>();

  /** A fresh id for a request sent to `worker`. */
  issue(worker: number): number {
    const id = this.next++;
    this.open.set(id, worker);
    return id;
  }

  /** True the first time `worker` returns `id`; false ever after (and for ids never issued to it). */
  accept(id: number, worker: number): boolean {
    if (this.open.get(id) !== worker) return false;
    this.open.delete(id);
    return true;
  }

  /** Forget the open requests of a worker that is gone (its late answers are refused). */
  drop(worker: number): number {
    let n = 0;
    for (const [id, w] of this.open) if (w === worker && this.open.delete(id)) n++;
    return n;
  }

  /** Requests issued and not (yet) accepted. */
  get outstanding(): number {
    return this.open.size;
  }
}
