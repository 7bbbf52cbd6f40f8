import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { elementsOf, heapFor, isMovable } from './wasm-heap';

/*
 * GatherV2 without batch dimensions (embedding lookups, batches picked by index) as row
 * copies on the heap. wasm's kernel works out each element's source on its own, about
 * 45 ns an element (128 rows of 784 values: 4.5 ms). The index check and its message are
 * wasm's own. Bit for bit (32-bit words, or bytes for bool).
 */

export function gatherRows<T extends Int32Array | Uint8Array>(x: T, out: T, indices: ArrayLike<number>, outer: number, dim: number, slice: number): void {
  let to = 0;
  for (let o = 0; o < outer; o++) {
    for (let k = 0; k < indices.length; k++) {
      const from = (o * dim + indices[k]) * slice;
      if (slice >= 16) out.set(x.subarray(from, from + slice), to);
      else for (let j = 0; j < slice; j++) out[to + j] = x[from + j];
      to += slice;
    }
  }
}

export function installFastGather(o: Overrides): void {
  const stock = previousKernel('GatherV2');
  o.kernel(kernelConfig('GatherV2', 'wasm', (args) => {
    const { x, indices } = args.inputs;
    const heap = heapFor(args.backend);
    const batchDims = (args.attrs.batchDims as number | undefined) ?? 0;
    if (!heap || batchDims !== 0 || !isMovable(x.dtype)) return stock(args);
    const axis = tf.util.parseAxisParam(args.attrs.axis as number, x.shape)[0];
    const ids = args.backend.readSync(indices.dataId) as ArrayLike<number>;
    const dim = x.shape[axis];
    for (let i = 0; i < ids.length; i++) {
      const index = ids[i];
      tf.util.assert(index <= dim - 1 && index >= 0, () => `GatherV2: the index value ${index} is not in [0, ${dim - 1}]`);
    }
    const info = tf.backend_util.segment_util.collectGatherOpShapeInfo(x as unknown as tf.Tensor, indices as unknown as tf.Tensor, axis, 0);
    const out = heap.output(info.outputShape, x.dtype);
    const n = tf.util.sizeFromShape(info.outputShape);
    if (n === 0) return out;
    gatherRows(elementsOf(heap, x), elementsOf(heap, out), ids, info.outerSize, info.dimSize, info.sliceSize);
    return out;
  }));
}
