import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { elementsOf, heapFor, isMovable } from './wasm-heap';

/*
 * Slice as run copies in place on the heap. wasm's kernel first copies the whole input
 * out of the heap (readSync), whatever the slice: 128 rows of a [20000, 784] tensor took
 * about 35 ms (`npm run bench -- kernels`), as long as copying all 62 MB (a batch sliced from a dataset, as model.fit and
 * hand-written loops do); and above rank 4 it then reads element by element, about 800 ns
 * an element (2.7 ms for 3,072 values of a [1, 2, 3, 2, 32, 32] tensor: the rank-6 views of
 * the dilated-conv gradient and of the pooling and depth-to-space composites). Here the
 * trailing axes taken whole join the innermost run, which is copied at once for each
 * position of the axes before it. Bit for bit (32-bit words, or bytes for bool).
 */

/** Copies x[begin : begin + size] (row-major, of `shape`) into out. */
export function sliceInto<T extends Int32Array | Uint8Array>(x: T, out: T, shape: readonly number[], begin: readonly number[], size: readonly number[]): void {
  const rank = shape.length;
  const xStride = new Array<number>(rank);
  for (let d = rank - 1, s = 1; d >= 0; d--) {
    xStride[d] = s;
    s *= shape[d];
  }
  // The run: the innermost axis not taken whole, with every (whole) axis after it.
  let inner = rank - 1;
  while (inner > 0 && size[inner] === shape[inner]) inner--;
  const run = size[inner] * xStride[inner];
  const at = new Array<number>(inner).fill(0);
  let from = 0;
  for (let d = 0; d <= inner; d++) from += begin[d] * xStride[d];
  for (let to = 0; to < out.length; to += run) {
    if (run >= 16) out.set(x.subarray(from, from + run), to);
    else for (let k = 0; k < run; k++) out[to + k] = x[from + k];
    for (let d = inner - 1; d >= 0; d--) {
      from += xStride[d];
      if (++at[d] < size[d]) break;
      from -= xStride[d] * size[d];
      at[d] = 0;
    }
  }
}

export function installFastSlice(o: Overrides): void {
  const stock = previousKernel('Slice');
  o.kernel(kernelConfig('Slice', 'wasm', (args) => {
    const { x } = args.inputs;
    const heap = heapFor(args.backend);
    if (!heap || x.shape.length === 0 || !isMovable(x.dtype)) return stock(args);
    const [begin, size] = tf.slice_util.parseSliceParams(x as unknown as tf.Tensor, args.attrs.begin as number[], args.attrs.size as number[]);
    const out = heap.output(size, x.dtype);
    const n = tf.util.sizeFromShape(size);
    if (n === 0) return out;
    sliceInto(elementsOf(heap, x), elementsOf(heap, out), x.shape, begin, size);
    return out;
  }));
}

/**
 * Unpack (tf.unstack, the gradient of tf.stack) as one in-place slice per output: wasm's
 * kernel calls its own slice for each, copying the whole input out of the heap each time
 * (a revBiFPN step unstacks its coupled streams 24 times). Outputs are allocated first: a
 * heap that grows detaches the views taken before.
 */
export function installFastUnpack(o: Overrides): void {
  const stock = previousKernel('Unpack');
  o.kernel(kernelConfig('Unpack', 'wasm', (args) => {
    const { value } = args.inputs;
    const heap = heapFor(args.backend);
    if (!heap || value.shape.length === 0 || !isMovable(value.dtype)) return stock(args);
    const rank = value.shape.length;
    const axis = (args.attrs.axis as number) < 0 ? (args.attrs.axis as number) + rank : (args.attrs.axis as number);
    const outShape = value.shape.filter((_, d) => d !== axis);
    const outs = Array.from({ length: value.shape[axis] }, () => heap.output(outShape, value.dtype));
    if (tf.util.sizeFromShape(outShape) === 0) return outs;
    const x = elementsOf(heap, value);
    const begin = new Array<number>(rank).fill(0);
    const size = [...value.shape];
    size[axis] = 1;
    outs.forEach((out, i) => {
      begin[axis] = i;
      sliceInto(x, elementsOf(heap, out), value.shape, begin, size);
    });
    return outs;
  }));
}
