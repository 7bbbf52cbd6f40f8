import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { callKernel, kernelConfig } from './kernel-calls';
import type { Overrides } from './overrides';

/*
 * UnsortedSegmentSum, the gradient of gather and so of every Embedding layer, in one pass:
 * each row of x is added to the row of its segment. tfjs's cpu kernel (which the wasm shim
 * borrowed through the cpu bridge) makes a mask, a product and a sum over the whole of x
 * for each segment, numSegments passes: the gradient of an Embedding of 1,000 rows for a
 * batch of 32 x 50 tokens took 6.6-7.1 s (`npm run bench -- kernels`), on cpu and wasm
 * alike, against a fraction of a millisecond here. The additions are those of the
 * masked sum, in the same order, without its added zeros; so the sums are the same except
 * that a segment no longer gets NaN from an infinite value of another segment (0 x Inf)
 * and keeps a -0 sum.
 */

type Values = Float32Array | Int32Array;

/** out[s] += x[i] for every i whose segment id s is in [0, numSegments); rows of `inner` values. */
export function segmentSum(x: Values, ids: Int32Array, numSegments: number, inner: number, out: Values): void {
  for (let i = 0; i < ids.length; i++) {
    const s = ids[i];
    if (s < 0 || s >= numSegments) continue; // dropped, as TensorFlow does
    const from = i * inner;
    const to = s * inner;
    for (let j = 0; j < inner; j++) out[to + j] += x[from + j];
  }
}

export function installSegmentSum(o: Overrides, backends: readonly string[]): void {
  for (const backendName of backends) {
    const previous = tf.getKernel('UnsortedSegmentSum', backendName);
    o.kernel(kernelConfig('UnsortedSegmentSum', backendName, (args) => {
      const { x, segmentIds } = args.inputs;
      if (x.dtype !== 'float32' && x.dtype !== 'int32') {
        if (!previous) throw new TapfitError(ErrorCodes.BACKEND, `UnsortedSegmentSum: ${x.dtype} values are not supported on backend '${backendName}'; cast them to float32 first.`);
        return callKernel(previous, args);
      }
      const numSegments = args.attrs.numSegments as number;
      const shape = [numSegments, ...x.shape.slice(segmentIds.shape.length)];
      const inner = tf.util.sizeFromShape(shape.slice(1));
      const values = args.backend.readSync(x.dataId) as Values;
      const ids = Int32Array.from(args.backend.readSync(segmentIds.dataId) as ArrayLike<number>);
      const out = x.dtype === 'int32' ? new Int32Array(numSegments * inner) : new Float32Array(numSegments * inner);
      segmentSum(values, ids, numSegments, inner, out);
      return { dataId: args.backend.write(out, shape, x.dtype), shape, dtype: x.dtype };
    }));
  }
}
