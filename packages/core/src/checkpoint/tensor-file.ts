import { constants } from 'node:buffer';
import { createHash } from 'node:crypto';
import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';

/** A tensor's place in a checkpoint's binary file. */
export interface TensorEntry {
  shape: number[];
  dtype: 'float32' | 'int32' | 'bool';
  /** Byte offset into tensors.bin. */
  offset: number;
  /** Hex SHA-256 of the tensor's bytes (format version 2 on; version 1 has none). */
  sha256?: string;
}

/** A reference to a tensor in the binary file; stands in for the tensor inside JSON. */
export type TensorRef = { $tensor: number };

const isRef = (v: unknown): v is TensorRef => typeof v === 'object' && v !== null && typeof (v as TensorRef).$tensor === 'number' && Object.keys(v).length === 1;

/**
 * Collects tensors into one little-endian binary buffer (4 bytes per element for every
 * dtype) while JSON-able structures keep `{ $tensor: index }` references.
 */
export class TensorWriter {
  readonly entries: TensorEntry[] = [];
  private readonly chunks: Uint8Array[] = [];
  private bytes = 0;

  add(t: tf.Tensor): TensorRef {
    if (t.dtype !== 'float32' && t.dtype !== 'int32' && t.dtype !== 'bool') {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `checkpoint: cannot save a ${t.dtype} tensor (only float32, int32, bool).`);
    }
    // The read-back as it comes (a float32 or int32 array: no second copy); bool widens to 4 bytes.
    const values = t.dataSync();
    const data = t.dtype === 'bool' ? Int32Array.from(values as Uint8Array) : (values as Float32Array | Int32Array);
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.entries.push({ shape: [...t.shape], dtype: t.dtype, offset: this.bytes, sha256: sha256(bytes) });
    this.chunks.push(bytes);
    this.bytes += data.byteLength;
    return { $tensor: this.entries.length - 1 };
  }

  /** Replace every tensor inside `value` by a reference (deep copy of the structure). */
  encode(value: unknown): unknown {
    if (value instanceof tf.Tensor) return this.add(value);
    if (Array.isArray(value)) return value.map((v) => this.encode(v));
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.encode(v)]));
    return value;
  }

  /** The binary file's bytes: one Buffer, so at most buffer.constants.MAX_LENGTH (4 GiB on Node 20). */
  buffer(): Buffer {
    if (this.bytes > MAX_LENGTH) {
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `checkpoint: the tensors come to ${gib(this.bytes)}, more than one file of this format holds (${gib(MAX_LENGTH)}: Node's largest Buffer). ` +
          'Save a smaller state (e.g. an optimizer with less state, such as sgd or momentum instead of adam) or save the weights alone with model.save().',
      );
    }
    return Buffer.concat(this.chunks, this.bytes);
  }
}

const MAX_LENGTH = constants.MAX_LENGTH;
const gib = (bytes: number) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Reads tensors back. The constructor validates every entry against the buffer and
 * every checksum first, so a corrupt file fails before any tensor is used; `labels[i]`
 * names tensor i in errors (e.g. "model variable 'dense/kernel'").
 */
export class TensorReader {
  constructor(
    private readonly entries: readonly TensorEntry[],
    private readonly bin: Buffer,
    private readonly where: string,
    labels: readonly string[] = [],
  ) {
    let expected = 0;
    entries.forEach((e, i) => {
      const size = e.shape.reduce((a, b) => a * b, 1);
      if (e.offset !== expected || !['float32', 'int32', 'bool'].includes(e.dtype) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) {
        throw new TapfitError(ErrorCodes.CHECKPOINT, `${where}: tensor entry ${i} is malformed; the checkpoint is corrupt.`);
      }
      expected += size * 4;
    });
    if (expected !== bin.length) {
      throw new TapfitError(ErrorCodes.CHECKPOINT, `${where}: tensors.bin has ${bin.length} bytes but the manifest describes ${expected}; the checkpoint is truncated or corrupt.`);
    }
    entries.forEach((e, i) => {
      if (e.sha256 === undefined || sha256(this.bytes(i)) === e.sha256) return;
      throw new TapfitError(
        ErrorCodes.CHECKPOINT,
        `${where}: the bytes of ${labels[i] ?? `tensor ${i}`} in tensors.bin do not match their checksum; the checkpoint is corrupt (damaged on disk or edited). ` +
          'Resume from an older checkpoint (write its step-* folder name into LATEST) or start training again.',
      );
    });
  }

  /** Entry `i`, or a clear error when a reference points past the table. */
  entry(i: number): TensorEntry {
    const e = this.entries[i];
    if (!e) throw new TapfitError(ErrorCodes.CHECKPOINT, `${this.where}: reference to missing tensor ${i}; the checkpoint is corrupt.`);
    return e;
  }

  private bytes(i: number): Uint8Array {
    const e = this.entries[i];
    const size = e.shape.reduce((a, b) => a * b, 1);
    return new Uint8Array(this.bin.buffer, this.bin.byteOffset + e.offset, size * 4);
  }

  /** A new tensor for entry `i` (caller owns it). */
  tensor(i: number): tf.Tensor {
    const e = this.entry(i);
    const slice = this.bytes(i).slice().buffer; // a copy: aligned for the typed array
    const data = e.dtype === 'float32' ? new Float32Array(slice) : new Int32Array(slice);
    return tf.tensor(data, e.shape, e.dtype);
  }

  /** Replace references inside `value` by new tensors. */
  decode(value: unknown): unknown {
    if (isRef(value)) return this.tensor(value.$tensor);
    if (Array.isArray(value)) return value.map((v) => this.decode(v));
    if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.decode(v)]));
    return value;
  }
}
