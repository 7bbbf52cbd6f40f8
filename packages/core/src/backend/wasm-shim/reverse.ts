import * as tf from '@tensorflow/tfjs';
import { callKernel, kernelConfig } from './kernel-calls';
import type { Overrides } from './overrides';

/*
 * wasm's Reverse treats bool tensors (one byte an element) as 4-byte elements: it returns
 * wrong values and writes past its output, corrupting the heap. Bool tensors are reversed
 * here from a copy; the fast kernels (fast-kernels/reverse.ts) do every dtype in place.
 */

/** A run of neighbouring axes that are all reversed or all kept, as one axis. */
interface Run {
  size: number;
  reversed: boolean;
}

/** Writes `x` (row-major, of `shape`) reversed along `axes` into `out` (same length, not overlapping). */
export function reverseInto<T extends Int32Array | Uint8Array>(x: T, out: T, shape: readonly number[], axes: readonly number[]): void {
  const flip = new Set(axes);
  const runs: Run[] = [];
  shape.forEach((size, axis) => {
    if (size === 1) return; // reversing a unit axis changes nothing
    const reversed = flip.has(axis);
    const last = runs[runs.length - 1];
    if (last && last.reversed === reversed) last.size *= size;
    else runs.push({ size, reversed });
  });
  // The kept axes at the end are contiguous blocks, copied whole.
  const block = runs.length > 0 && !runs[runs.length - 1].reversed ? runs.pop()!.size : 1;
  if (runs.length === 0) {
    out.set(x);
    return;
  }
  const strides = new Array<number>(runs.length);
  for (let k = runs.length - 1, s = block; k >= 0; k--) {
    strides[k] = s;
    s *= runs[k].size;
  }
  let to = 0;
  const innermost = runs.length - 1;
  const walk = (k: number, from: number): void => {
    const { size, reversed } = runs[k];
    const stride = strides[k];
    if (k < innermost) {
      for (let j = 0; j < size; j++) walk(k + 1, from + (reversed ? size - 1 - j : j) * stride);
      return;
    }
    if (block === 1) {
      // The innermost run is reversed (a kept one would be the block): stride 1, backwards.
      for (let j = size - 1; j >= 0; j--) out[to++] = x[from + j];
      return;
    }
    for (let j = 0; j < size; j++) {
      const start = from + (reversed ? size - 1 - j : j) * stride;
      if (block < 16) for (let i = 0; i < block; i++) out[to++] = x[start + i];
      else {
        out.set(x.subarray(start, start + block), to);
        to += block;
      }
    }
  };
  walk(0, 0);
}

export function installBoolReverse(o: Overrides): void {
  const stock = tf.getKernel('Reverse', 'wasm');
  if (!stock) return;
  o.kernel(kernelConfig('Reverse', 'wasm', (args) => {
    const { x } = args.inputs;
    if (x.dtype !== 'bool') return callKernel(stock, args);
    const values = args.backend.readSync(x.dataId) as Uint8Array;
    const out = new Uint8Array(values.length);
    reverseInto(values, out, x.shape, tf.util.parseAxisParam(args.attrs.dims as number | number[], x.shape));
    return { dataId: args.backend.write(out, x.shape, 'bool'), shape: x.shape, dtype: 'bool' };
  }));
}
