import seedrandom from 'seedrandom';

/** What a shuffle reads from: a tf.data iterator, or any async iterator. */
export interface Upstream<T> {
  next(): Promise<IteratorResult<T>>;
  return?(value?: undefined): Promise<unknown>;
}

/**
 * A seeded shuffle of a stream through a buffer of `capacity` items (datasetData's), in
 * place of tf.data's `shuffle()`. tf.data's queues its refills' promises unawaited, so a
 * read that fails (a bad record, a map that throws, the memory guard's refusal) is an
 * unhandled rejection that ends the process before anyone awaits it. Here each read is
 * awaited in turn: a failure rejects the `next()` the consumer awaits. And a tf.data
 * iterator cannot be closed, so whatever its buffer held when a fit stopped early or
 * failed stayed allocated; here `free` gets the buffered items when the generator ends
 * in any way (its consumer's `return()` / `throw()` included), and the upstream is closed
 * (`return()`, where it has one) so that it frees what it holds too.
 * The order depends only on `seed` and the upstream's order.
 */
export class ShuffleBuffer<T> {
  private readonly items: T[] = [];
  /** Items buffered when the shuffle last failed or was closed (for an error message). */
  heldAtEnd = 0;

  constructor(
    private readonly capacity: number,
    private readonly seed: string,
    private readonly free: (items: T[]) => void,
  ) {}

  /** Items buffered now. */
  get held(): number {
    return this.items.length;
  }

  async *shuffle(upstream: Upstream<T>): AsyncGenerator<T> {
    const rng = seedrandom(this.seed);
    const items = this.items;
    let exhausted = false;
    const read = async () => {
      const r = await upstream.next();
      if (r.done) exhausted = true;
      else items.push(r.value);
    };
    try {
      while (!exhausted && items.length < this.capacity) await read();
      while (items.length > 0) {
        const i = Math.floor(rng() * items.length);
        const item = items[i];
        items[i] = items[items.length - 1];
        items.pop();
        yield item; // the consumer's from here on
        if (!exhausted) await read();
      }
    } finally {
      this.heldAtEnd = items.length;
      this.free(items.splice(0));
      await upstream.return?.(undefined);
    }
  }
}
