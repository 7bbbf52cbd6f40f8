import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { TransformState, TransformStateValue } from './types';

/** A tensor as JSON. The single '$tensor' key tells it apart from a nested record. */
export type SerializedTensor = { $tensor: { shape: number[]; dtype: 'float32' | 'int32' | 'bool'; data: number[] } };
export type SerializedState = { [key: string]: number | SerializedTensor | SerializedState };

const TAG = '$tensor';
const DTYPES = ['float32', 'int32', 'bool'];

/**
 * A JSON-able copy of a state (reads every tensor back; use at checkpoint time, not per
 * step). float32 values survive JSON exactly, so a run resumed from
 * `deserializeState(JSON.parse(JSON.stringify(serializeState(s))))` continues bit for bit.
 * Non-finite values cannot be written as JSON numbers, so they are an error.
 */
export function serializeState(state: TransformState): SerializedState {
  const write = (value: TransformStateValue, path: string): SerializedState[string] => {
    if (value instanceof tf.Tensor) {
      if (!DTYPES.includes(value.dtype)) fail(path, `dtype ${value.dtype} cannot be saved (only ${DTYPES.join(', ')})`);
      const data = Array.from(value.dataSync() as ArrayLike<number>);
      const bad = data.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) fail(path, `holds ${data[bad]} at flat index ${bad}; the run has diverged`);
      return { [TAG]: { shape: [...value.shape], dtype: value.dtype as 'float32', data } };
    }
    if (typeof value === 'number') {
      if (!Number.isFinite(value)) fail(path, `is ${value}; only finite numbers can be saved`);
      return value;
    }
    if (typeof value !== 'object' || value === null) fail(path, `is ${String(value)}; a state holds tensors, numbers and records`);
    const out: SerializedState = {};
    for (const [k, v] of Object.entries(value)) {
      if (k === TAG) fail(path, `uses the reserved key '${TAG}'`);
      out[k] = write(v, join(path, k));
    }
    return out;
  };
  return write(state, '') as SerializedState;
}

/** Tensors back from `serializeState`'s output (validated; creates new tensors). */
export function deserializeState(json: unknown): TransformState {
  const created: tf.Tensor[] = [];
  const read = (value: unknown, path: string): TransformStateValue => {
    if (typeof value === 'number') return value;
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      fail(path, `is ${JSON.stringify(value)}; expected a number, a record or a { ${TAG} } tensor`);
    }
    if (TAG in value) return readTensor((value as SerializedTensor)[TAG], path);
    const out: TransformState = {};
    for (const [k, v] of Object.entries(value)) out[k] = read(v, join(path, k));
    return out;
  };
  const readTensor = (t: SerializedTensor['$tensor'] | undefined, path: string): tf.Tensor => {
    const { shape, dtype, data } = t ?? ({} as Partial<SerializedTensor['$tensor']>);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) fail(path, 'has an invalid shape');
    if (typeof dtype !== 'string' || !DTYPES.includes(dtype)) fail(path, `has an invalid dtype ${JSON.stringify(dtype)}`);
    if (!Array.isArray(data) || !data.every((x) => typeof x === 'number')) fail(path, 'has invalid data (expected numbers)');
    const size = shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) fail(path, `has ${data.length} values but shape [${shape}] needs ${size}`);
    const tensor = tf.tensor(data, shape, dtype);
    created.push(tensor);
    return tensor;
  };
  try {
    return read(json, '') as TransformState;
  } catch (e) {
    created.forEach((t) => t.dispose()); // no half-built state on failure
    throw e;
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

function fail(path: string, problem: string): never {
  throw new TapfitError(ErrorCodes.STATE, `optimizer state entry '${path || '(root)'}' ${problem}.`);
}
