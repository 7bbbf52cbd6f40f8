import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { runOnCpu } from './cpu-bridge';
import { callKernel, composite, kernelConfig } from './kernel-calls';
import type { Overrides } from './overrides';

/** tfjs-backend-wasm's kernels that XNNPACK computes with at most this many dimensions. */
const XNNPACK_MAX_DIMS = 6;

/** Binary kernels that XNNPACK runs on wasm: above 6 dimensions they returned garbage. */
export const HIGH_RANK_BINARY_KERNELS = ['Add', 'Sub', 'Multiply', 'RealDiv', 'SquaredDifference'] as const;

/**
 * Calls XNNPACK refuses. tfjs-backend-wasm 4.22 prints "XNN status ... is not successful"
 * on stdout and returns the output buffer as it found it on the heap: garbage, silently.
 *
 * - Element-wise binary ops of rank 7 and more (XNNPACK supports 6 dimensions), for
 *   same-shape inputs too. High ranks appear without the user asking for them: the
 *   second-order gradient of a tile multiplied rank-12 tensors. The axes are merged first
 *   where both inputs broadcast alike (size-1 axes of the result dropped, runs of axes
 *   where each input is either full or broadcast joined), which keeps every element's
 *   pair; a result that still needs more than 6 axes runs on the cpu backend.
 * - PadV2 above 6 dimensions: on cpu.
 * - A product with an empty dimension: XNNPACK refuses a fully connected operator with no
 *   inputs ([m, 0] x [0, n], whose result is zeros, plus the bias and activation when
 *   fused) or no outputs; on cpu.
 */
export function installXnnpackRefusals(o: Overrides): void {
  for (const name of HIGH_RANK_BINARY_KERNELS) {
    const previous = tf.getKernel(name, 'wasm');
    const cpu = tf.getKernel(name, 'cpu');
    if (!previous || !cpu) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${name}' is not registered for both cpu and wasm, so the shim cannot route it. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22 (the same version).`);
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      const { a, b } = args.inputs;
      const shape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
      if (shape.length <= XNNPACK_MAX_DIMS) return callKernel(previous, args);
      const merged = mergeAxes(a.shape, b.shape, shape);
      if (merged.out.length > XNNPACK_MAX_DIMS) return runOnCpu(cpu, args);
      return composite(args.backend, 'wasm', (k) => {
        const result = k.track(callKernel(previous, { ...args, inputs: { a: k.reshape(a, merged.a), b: k.reshape(b, merged.b) } }));
        return k.run('Reshape', { x: result }, { shape });
      });
    }));
  }
  const pad = tf.getKernel('PadV2', 'wasm');
  const padCpu = tf.getKernel('PadV2', 'cpu');
  if (!pad || !padCpu) throw new TapfitError(ErrorCodes.BACKEND, "wasm shim: kernel 'PadV2' is not registered for both cpu and wasm. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22 (the same version).");
  o.kernel(kernelConfig('PadV2', 'wasm', (args) => (args.inputs.x.shape.length > XNNPACK_MAX_DIMS ? runOnCpu(padCpu, args) : callKernel(pad, args))));
  for (const name of ['BatchMatMul', '_FusedMatMul']) {
    const product = tf.getKernel(name, 'wasm');
    const productCpu = tf.getKernel(name, 'cpu');
    if (!product || !productCpu) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${name}' is not registered for both cpu and wasm. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22 (the same version).`);
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      const { a, b } = args.inputs;
      // Any empty dimension: the contracted one (refused, garbage out), or an empty result (refused, nothing to write).
      return a.shape.includes(0) || b.shape.includes(0) ? runOnCpu(productCpu, args) : callKernel(product, args);
    }));
  }
}

/**
 * The two inputs' shapes and the result's with axes merged: size-1 axes of the result
 * dropped, and neighbouring axes joined while each input keeps the same kind on them
 * (its full size, or 1 broadcast), so every output element still meets the same pair.
 */
export function mergeAxes(aShape: readonly number[], bShape: readonly number[], out: readonly number[]): { a: number[]; b: number[]; out: number[] } {
  const pad = (s: readonly number[]) => [...new Array<number>(out.length - s.length).fill(1), ...s];
  const [pa, pb] = [pad(aShape), pad(bShape)];
  const groups: Array<{ kind: string; a: number; b: number; out: number }> = [];
  out.forEach((size, i) => {
    if (size === 1) return;
    const kind = `${pa[i] === 1 ? 'b' : 'f'}${pb[i] === 1 ? 'b' : 'f'}`;
    const last = groups[groups.length - 1];
    if (last?.kind === kind) {
      last.a *= pa[i];
      last.b *= pb[i];
      last.out *= size;
    } else groups.push({ kind, a: pa[i], b: pb[i], out: size });
  });
  if (groups.length === 0) return { a: [1], b: [1], out: [1] };
  return { a: groups.map((g) => g.a), b: groups.map((g) => g.b), out: groups.map((g) => g.out) };
}
