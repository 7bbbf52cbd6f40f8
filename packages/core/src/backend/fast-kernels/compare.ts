import * as tf from '@tensorflow/tfjs';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { previousKernel } from './previous-kernel';
import { heapFor } from './wasm-heap';

/*
 * Comparisons, Maximum and Minimum (float32, int32), any broadcasting. wasm's own kernels
 * take 77-86 ns an element once an operand is broadcast ([32, 50, 64] against [32, 1, 64]:
 * 8 ms; the mask of a max-pooling or max-reduction gradient is such an Equal) and Maximum
 * about 13 even on equal shapes. Here the axes are merged where both operands run on
 * together, and the innermost one is a loop with each operand's step 0 or 1, in
 * JavaScript on the heap. The values of wasm's kernels: IEEE comparisons, and
 * max(a, b) = a < b ? b : a, min(a, b) = b < a ? b : a (so a NaN in a wins, one in b loses,
 * and -0 and 0 keep the first operand), as its std::max and std::min.
 */

type Values = Float32Array | Int32Array;
type Inner = (a: Values, pa: number, sa: number, b: Values, pb: number, sb: number, out: Values | Uint8Array, po: number, n: number) => void;

const INNER: Record<string, Inner> = {
  Equal: (a, pa, sa, b, pb, sb, out, po, n) => {
    for (let i = 0; i < n; i++, pa += sa, pb += sb) out[po + i] = a[pa] === b[pb] ? 1 : 0;
  },
  NotEqual: (a, pa, sa, b, pb, sb, out, po, n) => {
    for (let i = 0; i < n; i++, pa += sa, pb += sb) out[po + i] = a[pa] !== b[pb] ? 1 : 0;
  },
  Greater: (a, pa, sa, b, pb, sb, out, po, n) => {
    for (let i = 0; i < n; i++, pa += sa, pb += sb) out[po + i] = a[pa] > b[pb] ? 1 : 0;
  },
  GreaterEqual: (a, pa, sa, b, pb, sb, out, po, n) => {
    for (let i = 0; i < n; i++, pa += sa, pb += sb) out[po + i] = a[pa] >= b[pb] ? 1 : 0;
  },
  Less: (a, pa, sa, b, pb, sb, out, po, n) => {
    for (let i = 0; i < n; i++, pa += sa, pb += sb) out[po + i] = a[pa] < b[pb] ? 1 : 0;
  },
  LessEqual: (a, pa, sa, b, pb, sb, out, po, n) => {
    for (let i = 0; i < n; i++, pa += sa, pb += sb) out[po + i] = a[pa] <= b[pb] ? 1 : 0;
  },
  Maximum: (a, pa, sa, b, pb, sb, out, po, n) => {
    for (let i = 0; i < n; i++, pa += sa, pb += sb) {
      const x = a[pa];
      const y = b[pb];
      out[po + i] = x < y ? y : x;
    }
  },
  Minimum: (a, pa, sa, b, pb, sb, out, po, n) => {
    for (let i = 0; i < n; i++, pa += sa, pb += sb) {
      const x = a[pa];
      const y = b[pb];
      out[po + i] = y < x ? y : x;
    }
  },
};

export const FAST_COMPARE_KERNELS = Object.keys(INNER);

export function installFastCompare(o: Overrides): void {
  for (const name of FAST_COMPARE_KERNELS) {
    const stock = previousKernel(name);
    const inner = INNER[name];
    const keepsDtype = name === 'Maximum' || name === 'Minimum';
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      const { a, b } = args.inputs;
      const heap = heapFor(args.backend);
      if (!heap || a.dtype !== b.dtype || (a.dtype !== 'float32' && a.dtype !== 'int32')) return stock(args);
      const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      const out = heap.output(shape, keepsDtype ? a.dtype : 'bool');
      const n = tf.util.sizeFromShape(shape);
      if (n === 0) return out;
      // Views made after the output's allocation, which may have grown the heap.
      const buffer = heap.words().buffer;
      const view = (t: tf.TensorInfo) => (a.dtype === 'int32' ? new Int32Array(buffer, heap.offset(t), tf.util.sizeFromShape(t.shape)) : new Float32Array(buffer, heap.offset(t), tf.util.sizeFromShape(t.shape)));
      const result = keepsDtype ? view(out) : new Uint8Array(buffer, heap.offset(out), n);
      broadcastApply(inner, view(a), a.shape, view(b), b.shape, result, shape);
      return out;
    }));
  }
}

/** Runs `inner` over the broadcast of a and b into out (row-major, of `shape`). */
export function broadcastApply(inner: Inner, a: Values, aShape: readonly number[], b: Values, bShape: readonly number[], out: Values | Uint8Array, shape: readonly number[]): void {
  // Each operand's step along each output axis: 0 where it is broadcast.
  const steps = (own: readonly number[]) => {
    const padded = [...new Array<number>(shape.length - own.length).fill(1), ...own];
    const s = new Array<number>(shape.length);
    for (let d = shape.length - 1, run = 1; d >= 0; d--) {
      s[d] = padded[d] === 1 && shape[d] !== 1 ? 0 : run;
      run *= padded[d];
    }
    return s;
  };
  const sa = steps(aShape);
  const sb = steps(bShape);
  // Merge an axis into the one after it where both operands run on across the boundary.
  const dims: Array<{ size: number; a: number; b: number }> = [];
  for (let d = 0; d < shape.length; d++) {
    if (shape[d] === 1) continue;
    const last = dims[dims.length - 1];
    if (last && last.a === sa[d] * shape[d] && last.b === sb[d] * shape[d]) {
      last.size *= shape[d];
      last.a = sa[d];
      last.b = sb[d];
    } else dims.push({ size: shape[d], a: sa[d], b: sb[d] });
  }
  if (dims.length === 0) {
    inner(a, 0, 0, b, 0, 0, out, 0, 1);
    return;
  }
  const innermost = dims[dims.length - 1];
  const outer = dims.slice(0, -1);
  const at = new Array<number>(outer.length).fill(0);
  let pa = 0;
  let pb = 0;
  for (let po = 0; po < out.length; po += innermost.size) {
    inner(a, pa, innermost.a, b, pb, innermost.b, out, po, innermost.size);
    // Next outer position: the last outer axis counts up, carrying into the ones before.
    for (let d = outer.length - 1; d >= 0; d--) {
      pa += outer[d].a;
      pb += outer[d].b;
      if (++at[d] < outer[d].size) break;
      pa -= outer[d].a * outer[d].size;
      pb -= outer[d].b * outer[d].size;
      at[d] = 0;
    }
  }
}
