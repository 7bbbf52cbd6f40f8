import * as tf from '@tensorflow/tfjs';
import seedrandom from 'seedrandom';
import { asBatchUpload } from '../backend/batch-upload';
import { ErrorCodes, TapfitError } from '../errors';
import { allWholeNumbers, checkLabelValues, labelKind, markLabelSource, type LabelSource } from './labels';
import type { Batch, BatchOptions, DataSource } from './data-source';
import { flattenInto } from './plain-batch';

/** A seeded permutation of 0..n-1 (Fisher-Yates), the same for the same (seed, epoch). */
export function permutation(n: number, seed: number, epoch: number): Int32Array {
  const rng = seedrandom(`tapfit:${seed}:${epoch}`);
  const idx = new Int32Array(n);
  for (let i = 0; i < n; i++) idx[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const t = idx[i];
    idx[i] = idx[j];
    idx[j] = t;
  }
  return idx;
}

/** x or y as values on the host, samples first (a source built without tensors: see arrayData). */
export interface HostTensor {
  values: HostArray;
  shape: readonly number[];
  dtype: 'float32' | 'int32';
}

/**
 * In-memory data: x and y with the sample axis first. Given tensors stay on the device:
 * batches are cut there (`slice`, or `gather` in a seeded permutation), and a range of the
 * source (validationSplit, take) reads rows of the same tensors, so fit(x, y) neither reads
 * x back nor copies it (a read-back of 1,280 x 784 floats and its garbage cost about 4 ms of
 * CPU per call on wasm, against 0.08-0.12 ms a batch for a slice and 0.09 ms for a gather,
 * measured 2026-12-02). Host values (arrayData, or a tensor's once something read them,
 * such as the label check) are cut on the host and uploaded once each, which is cheaper
 * still (0.02 ms a batch). arrayData's sources, and ranges of them, hold no device memory
 * (the wasm heap and GPUs are the scarce memory) until `x` or `y` is read, which uploads
 * it. `dispose()` frees the tensors the source was given or made, never those a range reads.
 */
export class TensorData implements DataSource, LabelSource {
  readonly size: number;
  readonly xShape: readonly number[];
  private readonly parts: { x: Part; y: Part };
  /** Class counts (and prediction ranks) the labels were found valid for. */
  private readonly labelsValidFor = new Set<string>();

  /** Tensors are kept on the device (the source frees them); host values are used as they are (not copied). */
  constructor(x: tf.Tensor | HostTensor, y: tf.Tensor | HostTensor);
  /** @internal a range: row views of another source's parts. */
  constructor(x: Part, y: Part);
  constructor(x: tf.Tensor | HostTensor | Part, y: tf.Tensor | HostTensor | Part) {
    checkSampleAxes(x, y, 'data');
    this.parts = { x: x instanceof Part ? x : new Part(x, 'x'), y: y instanceof Part ? y : new Part(y, 'y') };
    this.size = x.shape[0];
    this.xShape = x.shape.slice(1);
  }

  /** x as a tensor: the one given, or the host values uploaded at the first read (the source frees it). */
  get x(): tf.Tensor {
    return this.parts.x.tensor();
  }

  /** y as a tensor: the one given, or the host values uploaded at the first read (the source frees it). */
  get y(): tf.Tensor {
    return this.parts.y.tensor();
  }

  *batches({ batchSize, shuffle, seed, epoch, startBatch = 0 }: BatchOptions): Iterator<Batch> {
    const order = shuffle ? permutation(this.size, seed, epoch) : null;
    for (let start = startBatch * batchSize; start < this.size; start += batchSize) {
      const end = Math.min(start + batchSize, this.size);
      const x = this.rows(this.parts.x, order, start, end);
      let y: tf.Tensor;
      try {
        y = this.rows(this.parts.y, order, start, end);
      } catch (err) {
        x.dispose(); // y refused (memory budget): the batch never reaches the consumer that would free x
        throw err;
      }
      markLabelSource(y, this);
      yield { x, y };
    }
  }

  /** Samples [start, end) of `order` (or in storage order) as a new tensor. */
  private rows(part: Part, order: Int32Array | null, start: number, end: number): tf.Tensor {
    const onDevice = part.deviceRows(order, start, end);
    if (onDevice) return onDevice;
    const host = part.host;
    const width = host.length / this.size;
    const shape = [end - start, ...part.shape.slice(1)];
    if (!order) return asBatchUpload(() => tf.tensor(host.subarray(start * width, end * width), shape, part.dtype));
    const out = new (host.constructor as new (n: number) => HostArray)((end - start) * width);
    for (let i = start; i < end; i++) out.set(host.subarray(order[i] * width, (order[i] + 1) * width), (i - start) * width);
    return asBatchUpload(() => tf.tensor(out, shape, part.dtype));
  }

  /** Checks every label once on the host copy (the built-in classification losses call it; see data/labels.ts). */
  checkLabels(classes: number, predRank: number): void {
    const key = `${classes}/${predRank}`;
    if (this.labelsValidFor.has(key)) return;
    const y = this.parts.y;
    const kind = labelKind(y.shape.length, predRank);
    if (kind) checkLabelValues(y.host, y.shape, classes, kind, 'the data');
    this.labelsValidFor.add(key);
  }

  /** The first `n` samples (sharing this source's host values: no copy, nothing uploaded). */
  take(n: number): TensorData {
    return this.range(0, Math.min(n, this.size));
  }

  /** Samples [start, end) in storage order, sharing this source's tensors or host values (which nothing writes): no copy, nothing uploaded. */
  range(start: number, end: number): TensorData {
    return new TensorData(this.parts.x.rows(start, end), this.parts.y.rows(start, end));
  }

  dispose(): void {
    this.parts.x.dispose();
    this.parts.y.dispose();
  }
}

/**
 * x or y of a TensorData: rows of a tensor on the device (one the source was given, or
 * another source's when this is a range of it), or host values; the host values of a
 * tensor are read back only when something asks for them.
 * @internal
 */
export class Part {
  readonly shape: readonly number[];
  readonly dtype: 'float32' | 'int32';
  /** Rows [offset, offset + shape[0]) of `tensor` are this part's values. */
  private readonly device: { tensor: tf.Tensor; offset: number } | undefined;
  private hostValues: HostArray | undefined;
  /** The tensor `tensor()` hands out, freed by dispose(): the given one, or one made at the first read. */
  private owned: tf.Tensor | undefined;

  constructor(
    v: tf.Tensor | HostTensor | { rowsOf: tf.Tensor; offset: number; shape: readonly number[] },
    /** Which of the pair this is, as errors name it. */
    readonly what: 'x' | 'y',
  ) {
    if (v instanceof tf.Tensor) {
      this.device = { tensor: v, offset: 0 };
      this.owned = v;
      this.dtype = v.dtype as 'float32' | 'int32';
    } else if ('rowsOf' in v) {
      this.device = { tensor: v.rowsOf, offset: v.offset };
      this.dtype = v.rowsOf.dtype as 'float32' | 'int32';
    } else {
      const size = v.shape.reduce((a, b) => a * b, 1);
      if (v.values.length !== size) throw new TapfitError(ErrorCodes.SHAPE, `data: ${what} has ${v.values.length} values but its shape [${v.shape}] holds ${size}.`);
      this.hostValues = v.values;
      this.dtype = v.dtype;
    }
    this.shape = [...v.shape];
  }

  /** The values on the host, read back at the first call for a tensor's rows. */
  get host(): HostArray {
    if (!this.hostValues) {
      const { tensor, offset } = this.device!;
      const whole = offset === 0 && tensor.shape[0] === this.shape[0];
      const rows = whole ? tensor : tf.slice(tensor, offset, this.shape[0]);
      try {
        this.hostValues = rows.dataSync() as HostArray;
      } finally {
        if (rows !== tensor) rows.dispose();
      }
    }
    return this.hostValues;
  }

  /**
   * Rows [start, end) of `order` (or in storage order) cut on the device, as a new tensor;
   * undefined when the host values are there, which upload cheaper.
   */
  deviceRows(order: Int32Array | null, start: number, end: number): tf.Tensor | undefined {
    if (!this.device || this.hostValues) return undefined;
    const { tensor, offset } = this.device;
    return asBatchUpload(() =>
      tf.tidy(() => (order ? tf.gather(tensor, tf.tensor1d(Int32Array.from(order.subarray(start, end), (i) => i + offset), 'int32')) : tf.slice(tensor, offset + start, end - start))),
    );
  }

  /** Rows [start, end) as a part of their own: a view of the same tensor, or of the same host values. */
  rows(start: number, end: number): Part {
    const shape = [end - start, ...this.shape.slice(1)];
    if (this.device && !this.hostValues) return new Part({ rowsOf: this.device.tensor, offset: this.device.offset + start, shape }, this.what);
    const host = this.host;
    const width = host.length / this.shape[0];
    return new Part({ values: host.subarray(start * width, end * width), shape, dtype: this.dtype }, this.what);
  }

  tensor(): tf.Tensor {
    if (!this.owned) {
      const made = this.device ? tf.slice(this.device.tensor, this.device.offset, this.shape[0]) : tf.tensor(this.host, [...this.shape], this.dtype);
      this.owned = tf.keep(made);
    }
    return this.owned;
  }

  dispose(): void {
    this.owned?.dispose();
  }
}

/** x and y each have a sample axis, of the same length (`who` names the caller in the error). */
export function checkSampleAxes(x: { shape: readonly number[] }, y: { shape: readonly number[] }, who: string): void {
  if (x.shape.length === 0) throw new TapfitError(ErrorCodes.SHAPE, `${who}: x is a scalar (0-d); inputs need a sample axis: pass [N, ...features] ([1, ...features] for one sample).`);
  if (y.shape.length === 0) throw new TapfitError(ErrorCodes.SHAPE, `${who}: y is a scalar (0-d); labels need a sample axis: pass [N] class indices or [N, ...] targets ([1] or [1, ...] for one sample).`);
  if (x.shape[0] !== y.shape[0]) throw new TapfitError(ErrorCodes.SHAPE, `${who}: x has ${x.shape[0]} samples but y has ${y.shape[0]}; they must match.`);
}

export type HostArray = Float32Array | Int32Array | Uint8Array;
export type Numeric = ArrayLike<number> | number[][] | number[][][] | number[][][][];

/**
 * In-memory data from arrays or typed arrays. Nested arrays carry their own shape;
 * flat (typed) arrays need `xShape`/`yShape` (per sample, without the batch axis).
 * A flat `y` of whole numbers without `yShape` is int32 class indices; any other flat `y`
 * is float32 targets, one per sample. The arrays are copied once, on the host; batches are
 * uploaded as they are cut, so the source holds no device memory (reading its `x` or `y`
 * uploads that, and the source's `dispose()` frees it; no fit or evaluate frees a source
 * it is given).
 */
export function arrayData(spec: { x: Numeric; y: Numeric; xShape?: number[] | undefined; yShape?: number[] | undefined }): TensorData {
  // Whole numbers only: a flat array of 0.5, 1.5, ... is regression targets, not class indices to truncate.
  const yIsLabels = !spec.yShape && !(Array.isArray(spec.y) && Array.isArray(spec.y[0])) && allWholeNumbers(spec.y as ArrayLike<number>);
  return new TensorData(hostCopy(spec.x, spec.xShape, 'x', 'float32'), hostCopy(spec.y, spec.yShape, 'y', yIsLabels ? 'int32' : 'float32'));
}

/** `v`'s values in a new typed array of `dtype`, with the shape of its nesting or, when flat, [n / sample size, ...sampleShape]. */
function hostCopy(v: Numeric, sampleShape: number[] | undefined, what: 'x' | 'y', dtype: 'float32' | 'int32'): HostTensor {
  const Typed = dtype === 'int32' ? Int32Array : Float32Array;
  const nested = Array.isArray(v) && v.length > 0 && typeof v[0] !== 'number';
  if (nested) {
    const flat: number[] = [];
    const shape = flattenInto(v, flat);
    if (typeof shape === 'string') {
      const code = /differ in shape/.test(shape) ? ErrorCodes.SHAPE : ErrorCodes.CONFIG;
      throw new TapfitError(code, `data: ${what} must be numbers, nested arrays of one shape or typed arrays; got ${shape}.`);
    }
    return { values: Typed.from(flat), shape, dtype };
  }
  const n = (v as ArrayLike<number>).length;
  const per = (sampleShape ?? []).reduce((a, b) => a * b, 1);
  if (n % per !== 0) {
    throw new TapfitError(ErrorCodes.SHAPE, `data: ${what} has ${n} values, not a multiple of the sample shape [${sampleShape}] (${per} values).`);
  }
  // A typed array is copied (and converted) in one go; `.from` would iterate it.
  const values = ArrayBuffer.isView(v) ? new Typed(v as unknown as ArrayLike<number>) : Typed.from(v as ArrayLike<number>);
  return { values, shape: [n / per, ...(sampleShape ?? [])], dtype };
}

/** In-memory data from tensors (the source keeps them). */
export function tensorData(x: tf.Tensor, y: tf.Tensor): TensorData {
  for (const [v, name] of [[x, 'x'], [y, 'y']] as const) {
    if (v instanceof tf.Tensor) continue;
    const list = Array.isArray(v) ? ` (a list of ${(v as unknown[]).length}: tapfit trains models with one input and one output; for several use model.fit)` : '';
    throw new TapfitError(ErrorCodes.CONFIG, `tensorData: ${name} must be a tensor${list}; for arrays use arrayData({ x, y }).`);
  }
  return new TensorData(x, y);
}
