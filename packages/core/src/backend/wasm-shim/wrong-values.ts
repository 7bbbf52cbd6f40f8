import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { runOnCpu } from './cpu-bridge';
import { callKernel, composite, kernelConfig } from './kernel-calls';
import type { Overrides } from './overrides';

/**
 * Stock tfjs-backend-wasm 4.22 kernels that return wrong values (or crash) for some
 * inputs, found by comparing every kernel against cpu on random shapes. Each is routed
 * only where it is wrong:
 *
 * - Cast to bool kept the low byte of the integer value instead of testing for non-zero
 *   (-1 became 255, 256 became false): x != 0 instead.
 * - Conv2D, DepthwiseConv2dNative and their fused forms with 'same' padding returned
 *   zeros when a stride is larger than the filter (wasm's own 'same' padding came out
 *   negative): the explicit padding tfjs computes for 'same' instead, which is exact.
 * - Prelu read alpha along the last axis whatever its shape (alpha [N, 1] for x [N, C]):
 *   where(x < 0, alpha x, x) when alpha broadcasts along other axes.
 * - GatherV2 with batch dimensions and axes between them and `axis`: garbage, or an out
 *   of bounds crash; on cpu.
 * - A convolution whose output is empty wrote past it (every later kernel then failed with
 *   "memory access out of bounds"), and so did its gradients: an empty result, and zero
 *   gradients (installEmptyConvGradients, over the shim's own gradient kernels).
 */
export function installWrongValueFixes(o: Overrides): void {
  const stock = (name: string): tf.KernelConfig => {
    const k = tf.getKernel(name, 'wasm');
    if (!k) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${name}' is not registered for wasm. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22 (the same version).`);
    return k;
  };
  const cpuOf = (name: string): tf.KernelConfig => {
    const k = tf.getKernel(name, 'cpu');
    if (!k) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${name}' is not registered for cpu. Install @tensorflow/tfjs (the union package, which registers cpu).`);
    return k;
  };

  const cast = stock('Cast');
  o.kernel(kernelConfig('Cast', 'wasm', (args) => {
    const { x } = args.inputs;
    if (args.attrs.dtype !== 'bool' || x.dtype === 'bool' || (x.dtype !== 'float32' && x.dtype !== 'int32')) return callKernel(cast, args);
    // int32 compared as float32: every non-zero int32 stays non-zero.
    return composite(args.backend, 'wasm', (k) => {
      const v = x.dtype === 'float32' ? x : k.track(callKernel(cast, { ...args, attrs: { dtype: 'float32' } }));
      return k.run('NotEqual', { a: v, b: k.scalar(0) });
    });
  }));

  for (const name of ['Conv2D', 'DepthwiseConv2dNative', 'FusedConv2D', 'FusedDepthwiseConv2D']) {
    const conv = stock(name);
    const depthwise = name.includes('Depthwise');
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      const a = args.attrs as { strides: number | [number, number]; pad: unknown; dilations?: number | [number, number]; dimRoundingMode?: 'floor' | 'round' | 'ceil'; dataFormat?: string };
      const { x, filter } = args.inputs;
      if (a.dataFormat !== undefined && a.dataFormat !== 'NHWC') return callKernel(conv, args);
      const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], a.strides, a.dilations ?? 1, a.pad as 'same', a.dimRoundingMode, depthwise);
      // An empty output (a 'valid' filter wider than the input): wasm wrote past it, corrupting the heap.
      if (info.outShape.includes(0)) return composite(args.backend, 'wasm', (k) => k.run('Fill', {}, { shape: info.outShape, value: 0, dtype: 'float32' }));
      if (a.pad !== 'same') return callKernel(conv, args);
      const p = info.padInfo;
      const pad = [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]];
      return callKernel(conv, { ...args, attrs: { ...args.attrs, pad } as unknown as tf.NamedAttrMap });
    }));
  }

  const prelu = stock('Prelu');
  o.kernel(kernelConfig('Prelu', 'wasm', (args) => {
    const { x, alpha } = args.inputs;
    if (alongLastAxis(alpha.shape, x.shape) || x.dtype !== 'float32') return callKernel(prelu, args);
    return composite(args.backend, 'wasm', (k) =>
      k.run('Select', { condition: k.run('Less', { a: x, b: k.scalar(0) }), t: k.run('Multiply', { a: x, b: alpha }), e: x }),
    );
  }));

  const gather = stock('GatherV2');
  const gatherCpu = cpuOf('GatherV2');
  o.kernel(kernelConfig('GatherV2', 'wasm', (args) => {
    const { x } = args.inputs;
    const { axis, batchDims = 0 } = args.attrs as { axis: number; batchDims?: number };
    const at = axis < 0 ? axis + x.shape.length : axis;
    const between = batchDims > 0 && at > (batchDims < 0 ? batchDims + x.shape.length : batchDims);
    return between ? runOnCpu(gatherCpu, args) : callKernel(gather, args);
  }));
}

/** Gradients of a convolution whose output is empty: zeros (nothing flows back); over the shim's own gradient kernels. */
export function installEmptyConvGradients(o: Overrides): void {
  for (const name of ['Conv2DBackpropInput', 'Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter']) {
    const grad = tf.getKernel(name, 'wasm');
    if (!grad) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: kernel '${name}' is not registered for wasm. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-wasm 4.22 (the same version).`);
    const shapeOf = (attrs: Record<string, unknown>): number[] => (name.endsWith('Filter') ? attrs.filterShape : attrs.inputShape) as number[];
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      if (!args.inputs.dy.shape.includes(0)) return callKernel(grad, args);
      return composite(args.backend, 'wasm', (k) => k.run('Fill', {}, { shape: shapeOf(args.attrs as Record<string, unknown>), value: 0, dtype: 'float32' }));
    }));
  }
}

/** Whether `alpha` is a scalar or runs along x's last axis only (what wasm's Prelu reads). */
function alongLastAxis(alpha: readonly number[], x: readonly number[]): boolean {
  const size = alpha.reduce((a, b) => a * b, 1);
  if (size === 1) return true;
  const last = alpha[alpha.length - 1];
  return last === x[x.length - 1] && size === last;
}

/** Kernels this module registers for wasm. */
export const WRONG_VALUE_KERNELS = ['Cast', 'Conv2D', 'DepthwiseConv2dNative', 'FusedConv2D', 'FusedDepthwiseConv2D', 'Prelu', 'GatherV2', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter'] as const;
