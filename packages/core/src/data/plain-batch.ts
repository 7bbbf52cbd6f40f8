import * as tf from '@tensorflow/tfjs';
import { asBatchUpload } from '../backend/batch-upload';
import { ErrorCodes, TapfitError } from '../errors';
import type { Batch } from './data-source';

/**
 * Batching of datasetData's elements, done here rather than by tf.data's `batch()` so that
 * a fit that stops or fails frees what a half-made batch holds. Tensor parts are stacked,
 * as tf.data's batch() stacks them. Plain values (a number, an array of numbers, nested
 * for more axes, or a typed array: the elements tfjs's csv pipelines make before
 * `.batch()`) are cut on the host with arrayData's dtypes instead of batch()'s float32, so
 * the same data trains the same way from either source: xs float32; ys float32, except a
 * batch of whole numbers, one per element, which is int32 class indices (as arrayData
 * reads a flat y). A stream cannot be scanned ahead, so that is decided per batch: whole
 * regression targets come as int32 in some batches, which the losses read as the same
 * float values.
 */

export type NumericTypedArray = Float32Array | Int32Array | Uint8Array;
export type NestedNumbers = Array<number | NumericTypedArray | NestedNumbers>;
/** What an element's xs or ys may be. */
export type ElementPart = tf.Tensor | number | NestedNumbers | NumericTypedArray;
export type DatasetElement = { xs: ElementPart; ys: ElementPart };

export const ACCEPTED_PARTS = 'a tensor, a number, an array of numbers (nested for more axes) or a typed array';

/** What batches are cut from: a tf.data iterator, or a shuffle of one. */
export interface Elements {
  next(): Promise<IteratorResult<DatasetElement>>;
  return?(value?: undefined): Promise<unknown>;
}

/**
 * The batches of `elements` (checked by `partProblem`), from batch `startBatch` on. However
 * it ends (the data ran out, a batch was refused, the consumer stopped early or failed),
 * what it holds is freed and `elements` is closed, so a shuffle frees its buffer.
 */
export async function* batchesOf(elements: Elements, batchSize: number, startBatch: number): AsyncGenerator<Batch> {
  let rows: DatasetElement[] = [];
  try {
    for (let skip = startBatch * batchSize; skip > 0; skip--) {
      const r = await elements.next();
      if (r.done) return;
      tf.dispose(tensorsIn(r.value)); // batches the stopped epoch trained already
    }
    for (;;) {
      const r = await elements.next();
      if (!r.done) rows.push(r.value);
      if (rows.length === batchSize || (r.done && rows.length > 0)) {
        const batch = batchOf(rows);
        tf.dispose(tensorsIn(rows)); // stacked into the batch, as tf.data's batch() frees them
        rows = [];
        yield batch;
      }
      if (r.done) return;
    }
  } finally {
    tf.dispose(tensorsIn(rows));
    await elements.return?.(undefined);
  }
}

function batchOf(rows: DatasetElement[]): Batch {
  const x = batchPart(rows.map((r) => r.xs), 'xs');
  try {
    return { x, y: batchPart(rows.map((r) => r.ys), 'ys') };
  } catch (err) {
    x.dispose();
    throw err;
  }
}

/** One batch of the elements' xs (or ys) as one tensor, samples first. */
function batchPart(parts: unknown[], what: 'xs' | 'ys'): tf.Tensor {
  const tensors = parts.filter((p) => p instanceof tf.Tensor).length;
  if (tensors === parts.length) return tf.stack(parts as tf.Tensor[]);
  if (tensors > 0) {
    throw new TapfitError(ErrorCodes.CONFIG, `datasetData: some elements' ${what} are tensors and others are not; give every element's ${what} the same form (${ACCEPTED_PARTS}).`);
  }
  const values: number[] = [];
  let shape: number[] | undefined;
  for (const part of parts) {
    const s = flattenInto(part, values);
    if (typeof s === 'string') throw partError(what, s);
    if (shape && !sameShape(shape, s)) {
      throw new TapfitError(
        ErrorCodes.SHAPE,
        `datasetData: the elements' ${what} differ in shape ([${shape}] and [${s}]); a batch stacks them, so every element's ${what} must have one shape.`,
      );
    }
    shape = s;
  }
  const labels = what === 'ys' && shape!.length === 0 && values.every(Number.isInteger);
  return asBatchUpload(() => tf.tensor(labels ? Int32Array.from(values) : Float32Array.from(values), [parts.length, ...shape!], labels ? 'int32' : 'float32'));
}

/** Bytes an element's part takes as a tensor (plain values as float32, as they are batched). */
export function partBytes(part: unknown): number {
  if (part instanceof tf.Tensor) return part.size * (part.dtype === 'bool' ? 1 : part.dtype === 'complex64' ? 8 : 4);
  const values: number[] = [];
  return typeof flattenInto(part, values) === 'string' ? 0 : values.length * 4;
}

/** What is wrong with an element's xs or ys, in words ("a string"), or undefined when it is accepted. */
export function partProblem(part: unknown): string | undefined {
  if (part instanceof tf.Tensor) return undefined;
  const s = flattenInto(part, []);
  return typeof s === 'string' ? s : undefined;
}

export function partError(what: 'xs' | 'ys', found: string): TapfitError {
  return new TapfitError(ErrorCodes.CONFIG, `datasetData: an element's ${what} must be ${ACCEPTED_PARTS}; got ${what}: ${found}.`);
}

/** Appends `v`'s numbers to `out` and returns its shape, or says what in it is not a number. */
export function flattenInto(v: unknown, out: number[]): number[] | string {
  if (typeof v === 'number') {
    out.push(v);
    return [];
  }
  if (ArrayBuffer.isView(v) && !(v instanceof DataView)) {
    const a = v as unknown as ArrayLike<number | bigint>;
    for (let i = 0; i < a.length; i++) out.push(Number(a[i]));
    return [a.length];
  }
  if (!Array.isArray(v)) return describe(v);
  let inner: number[] | undefined;
  for (const item of v) {
    const s = flattenInto(item, out);
    if (typeof s === 'string') return `an array holding ${s.replace(/^an array holding /, '')}`;
    if (inner && !sameShape(inner, s)) return `an array whose items differ in shape ([${inner}] and [${s}])`;
    inner = s;
  }
  return [v.length, ...(inner ?? [])];
}

/** What an element (or its xs or ys) is, in words. */
export function describe(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  if (v instanceof tf.Tensor) return `a tensor of shape [${v.shape}]`;
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name} of ${(v as unknown as ArrayLike<unknown>).length ?? v.byteLength + ' bytes'}`;
  if (typeof v === 'object') return `an object with keys ${Object.keys(v).join(', ') || '(none)'}`;
  return `a ${typeof v}`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/** Every tensor in a dataset element (for disposal), however it is nested. */
export function tensorsIn(v: unknown): tf.Tensor[] {
  if (v instanceof tf.Tensor) return [v];
  if (Array.isArray(v) && typeof v[0] === 'number') return []; // a row of numbers: not walked value by value
  if (v && typeof v === 'object' && !ArrayBuffer.isView(v)) return Object.values(v).flatMap(tensorsIn);
  return [];
}
