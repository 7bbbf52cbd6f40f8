import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { partRange } from './kernel-threads';
import { previousKernel } from './previous-kernel';
import { heapFor, type HeapKernels, type WasmHeap } from './wasm-heap';

/**
 * Elements from which an element-wise kernel is split over the helper threads (4 MiB of
 * float32; measured on 2 cores: the big MLP's SGD update, 5.8 M weights, 11.3 -> 5.2 ms
 * a step split; the small MLP's, 0.7 M in layers of 0.4 M and less, was slower split).
 */
const MIN_SPLIT_ELEMENTS = 2 ** 20;

/**
 * Runs an element-wise kernel over n elements, split in element ranges over the helper
 * threads when there are some and n is large (ranges on multiples of 4 floats: whole
 * SIMD lanes). `args(from, count)` gives the kernel's arguments for one range.
 */
export function runElementwise<K extends keyof HeapKernels>(heap: WasmHeap, name: K, n: number, args: (from: number, count: number) => Parameters<HeapKernels[K]>): void {
  const parts = n >= MIN_SPLIT_ELEMENTS ? heap.parts() : 1;
  heap.run(name, Array.from({ length: parts }, (_, part) => {
    const [from, to] = partRange(n, part, parts);
    return args(from, to - from);
  }));
}

/**
 * Add (two float32 tensors of one shape) and Multiply (a float32 tensor by a scalar) on
 * the helper threads, when there are some and the tensor is large: the plain SGD step's
 * two passes over every weight (lr g, then w + u) ran on the main thread alone while the
 * products used both cores. And a bias added along the last axis (dense and convolution
 * layers), with any thread count: tfjs's broadcasting Add took about 1 ns an element.
 * Same IEEE operations, so the values of tfjs's kernels. Anything else (other dtypes,
 * other broadcasting, small same-shape tensors, one thread) goes to tfjs.
 */
export function installElementwise(o: Overrides): void {
  const previousAdd = previousKernel('Add');
  o.kernel(kernelConfig('Add', 'wasm', (args) => {
    const { a, b } = args.inputs;
    const heap = heapFor(args.backend);
    if (!heap || a.dtype !== 'float32' || b.dtype !== 'float32') return previousAdd(args);
    const n = tf.util.sizeFromShape(a.shape);
    if (tf.util.arraysEqual(a.shape, b.shape)) {
      if (heap.parts() < 2 || n < MIN_SPLIT_ELEMENTS) return previousAdd(args);
      const out = heap.output(a.shape);
      const [to, x, y] = [heap.offset(out), heap.offset(a), heap.offset(b)];
      runElementwise(heap, 'add', n, (from, count) => [to + 4 * from, x + 4 * from, y + 4 * from, count]);
      return out;
    }
    // A bias: a vector added along the last axis, in either order.
    const [t, bias] = isBiasOf(b, a) ? [a, b] : isBiasOf(a, b) ? [b, a] : [null, null];
    if (!t || !bias) return previousAdd(args);
    const cols = bias.shape[bias.shape.length - 1];
    const rows = tf.util.sizeFromShape(t.shape) / cols;
    const out = heap.output(t.shape);
    const [to, x, v] = [heap.offset(out), heap.offset(t), heap.offset(bias)];
    const parts = rows * cols >= MIN_SPLIT_ELEMENTS ? heap.parts() : 1;
    heap.run('addRows', Array.from({ length: parts }, (_, part) => {
      const [r0, r1] = partRange(rows, part, parts, 1);
      return [to, x, v, cols, r0, r1] as [number, number, number, number, number, number];
    }));
    return out;
  }));
  const previousMultiply = previousKernel('Multiply');
  o.kernel(kernelConfig('Multiply', 'wasm', (args) => {
    const { a, b } = args.inputs;
    const heap = heapFor(args.backend);
    // The tensor and the scalar, in either order; a scalar of higher rank would broadcast the shape.
    const [t, s] = tf.util.sizeFromShape(b.shape) === 1 && b.shape.length <= a.shape.length ? [a, b] : [b, a];
    const n = tf.util.sizeFromShape(t.shape);
    if (!heap || heap.parts() < 2 || n < MIN_SPLIT_ELEMENTS || t.dtype !== 'float32' || s.dtype !== 'float32' || tf.util.sizeFromShape(s.shape) !== 1 || s.shape.length > t.shape.length) return previousMultiply(args);
    const value = new Float32Array(heap.words().buffer, heap.offset(s), 1)[0];
    const out = heap.output(t.shape);
    const [to, x] = [heap.offset(out), heap.offset(t)];
    runElementwise(heap, 'scale', n, (from, count) => [to + 4 * from, x + 4 * from, value, count]);
    return out;
  }));
}

/** Whether `bias` is a vector (rank 1, or all leading dimensions 1) along t's last axis, of no higher rank than t. */
function isBiasOf(bias: tf.TensorInfo, t: tf.TensorInfo): boolean {
  const last = t.shape[t.shape.length - 1];
  return t.shape.length >= 1 && bias.shape.length >= 1 && bias.shape.length <= t.shape.length && bias.shape[bias.shape.length - 1] === last && tf.util.sizeFromShape(bias.shape) === last && tf.util.sizeFromShape(t.shape) > last;
}
