import * as tf from '@tensorflow/tfjs';

/** The four ways a tensor's values reach the host. */
const READS = ['dataSync', 'data', 'arraySync', 'array'] as const;
export type HostRead = (typeof READS)[number];

/**
 * The sizes (element counts) of the tensors read back to the host (dataSync, data,
 * arraySync, array) while `run` runs, in call order: one entry per read, so
 * `.length` counts the reads. A read made inside another (array() reads through data())
 * is the outer one's. `methods` narrows what is recorded (only the synchronous reads
 * that block a step, say). For tests of "no read-back per step", or that only small
 * values are read back. Resolves after an async `run` settles; the tensor methods are
 * restored whatever `run` does. Not for concurrent use with other code that reads tensors.
 */
export function recordHostReads(run: () => Promise<unknown>, methods?: readonly HostRead[]): Promise<number[]>;
export function recordHostReads(run: () => void, methods?: readonly HostRead[]): number[];
export function recordHostReads(run: () => unknown, methods: readonly HostRead[] = READS): number[] | Promise<number[]> {
  const proto = tf.Tensor.prototype as unknown as Record<HostRead, (this: tf.Tensor, ...a: unknown[]) => unknown>;
  const originals = Object.fromEntries(READS.map((k) => [k, proto[k]])) as typeof proto;
  const sizes: number[] = [];
  let depth = 0;
  for (const k of READS) {
    proto[k] = function (this: tf.Tensor, ...a: unknown[]) {
      if (depth === 0 && methods.includes(k)) sizes.push(this.size);
      depth++;
      try {
        return originals[k].apply(this, a); // an async read's nested read happens before it returns its promise
      } finally {
        depth--;
      }
    };
  }
  const restore = () => Object.assign(proto, originals);
  let result: unknown;
  try {
    result = run();
  } catch (err) {
    restore();
    throw err;
  }
  if (result instanceof Promise) {
    return result.then(
      () => (restore(), sizes),
      (err: unknown) => {
        restore();
        throw err;
      },
    );
  }
  restore();
  return sizes;
}
