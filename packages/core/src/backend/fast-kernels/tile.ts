import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { elementsOf, heapFor, isMovable } from './wasm-heap';

/*
 * Tile as block copies on the heap. wasm's own kernel works out each output element's
 * source on its own, about 45 ns an element (tfjs-layers' normalisation layers tile their
 * statistics and parameters to the input's shape: 1.5 ms for a [128, 256] tile). Here the
 * innermost axis is copied (or repeated, when it is short) row by row, and each outer
 * axis, once its first copy is written, is repeated with copyWithin. Bit for bit, as
 * 32-bit words or bytes (bool).
 */

export function tileInto<T extends Int32Array | Uint8Array>(x: T, out: T, shape: readonly number[], reps: readonly number[]): void {
  const rank = shape.length;
  if (rank === 0) {
    out[0] = x[0];
    return;
  }
  const xStride = new Array<number>(rank);
  const oStride = new Array<number>(rank);
  for (let d = rank - 1, xs = 1, os = 1; d >= 0; d--) {
    xStride[d] = xs;
    oStride[d] = os;
    xs *= shape[d];
    os *= shape[d] * reps[d];
  }
  const last = rank - 1;
  const row = shape[last];
  const fill = (axis: number, from: number, to: number): void => {
    if (axis === last) {
      if (row >= 16) for (let r = 0; r < reps[last]; r++) out.set(x.subarray(from, from + row), to + r * row);
      else for (let r = 0, o = to; r < reps[last]; r++) for (let k = 0; k < row; k++) out[o++] = x[from + k];
      return;
    }
    for (let j = 0; j < shape[axis]; j++) fill(axis + 1, from + j * xStride[axis], to + j * oStride[axis]);
    const block = shape[axis] * oStride[axis];
    for (let r = 1; r < reps[axis]; r++) out.copyWithin(to + r * block, to, to + block);
  };
  fill(0, 0, 0);
}

export function installFastTile(o: Overrides): void {
  const stock = previousKernel('Tile');
  o.kernel(kernelConfig('Tile', 'wasm', (args) => {
    const { x } = args.inputs;
    const reps = args.attrs.reps as number[];
    const heap = heapFor(args.backend);
    if (!heap || !isMovable(x.dtype) || reps.length !== x.shape.length) return stock(args);
    const shape = x.shape.map((d, i) => d * reps[i]);
    const out = heap.output(shape, x.dtype);
    const n = tf.util.sizeFromShape(shape);
    if (n === 0) return out;
    tileInto(elementsOf(heap, x), elementsOf(heap, out), x.shape, reps);
    return out;
  }));
}
