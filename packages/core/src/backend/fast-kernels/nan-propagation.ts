import * as tf from '@tensorflow/tfjs';
import { runOnCpu } from '../wasm-shim/cpu-bridge';
import { kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { runElementwise } from './elementwise';
import { previousKernel } from './previous-kernel';
import { heapFor, type WasmHeap } from './wasm-heap';

/** The kernels whose NaN handling this module fixes. */
export const NAN_PROPAGATING_KERNELS: readonly string[] = ['ClipByValue', 'Relu6', '_FusedMatMul', 'FusedConv2D', 'FusedDepthwiseConv2D', 'MaxPool', 'AvgPool'];

/** The clamp each fused activation is (others keep XNNPACK's, which keeps NaN already). */
const ACTIVATION_RANGE: Record<string, [number, number]> = { relu: [0, Infinity], relu6: [0, 6] };

/**
 * NaN stays NaN on wasm, as on cpu. XNNPACK's clamp returned its lower bound for NaN
 * (clipByValue, relu6, and the relu or relu6 fused into a dense or convolution layer when
 * no gradient is recorded: predict, evaluate, recomputed forwards) and its pooling wrote
 * -Infinity for a window holding a NaN. A NaN from bad data or diverged weights then
 * reached the loss as an ordinary number, so the trainer's non-finite guard never fired
 * while every weight turned NaN (a clipped cross-entropy read 8.06 for ever).
 *
 * - ClipByValue and Relu6 run tapfit's clamp, which keeps NaN lanes (a compare and a select).
 * - Fused products with relu/relu6 run linear, then the clamp in place: one more pass
 *   over the output, and only where tfjs fuses (never in a taped training forward).
 * - MaxPool and AvgPool keep XNNPACK's kernel; only when its output holds -Infinity (one
 *   SIMD scan of the output) does the call run on cpu instead: average pooling then gives
 *   NaN, and max pooling cpu's max over the window (tfjs's max pooling skips a NaN unless
 *   the whole window is NaN; XNNPACK skipped it too at some window positions).
 *
 * Values for every other input are XNNPACK's, bit for bit.
 */
export function installNanPropagation(o: Overrides): void {
  const clip = (name: 'ClipByValue' | 'Relu6', range: (attrs: Record<string, unknown>) => [number, number]) => {
    const previous = previousKernel(name);
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      const { x } = args.inputs;
      const heap = heapFor(args.backend);
      if (!heap || x.dtype !== 'float32') return previous(args);
      const out = heap.output(x.shape);
      clampInto(heap, out, x, ...range(args.attrs));
      return out;
    }));
  };
  clip('ClipByValue', (a) => [a.clipValueMin as number, a.clipValueMax as number]);
  clip('Relu6', () => [0, 6]);

  for (const name of ['_FusedMatMul', 'FusedConv2D', 'FusedDepthwiseConv2D']) {
    const previous = previousKernel(name);
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      const range = ACTIVATION_RANGE[(args.attrs.activation as string | undefined) ?? 'linear'];
      const heap = heapFor(args.backend);
      if (!range || !heap || args.inputs[name === '_FusedMatMul' ? 'a' : 'x'].dtype !== 'float32') return previous(args);
      const out = previous({ ...args, attrs: { ...args.attrs, activation: 'linear' } }) as tf.TensorInfo;
      clampInto(heap, out, out, ...range);
      return out;
    }));
  }

  for (const name of ['MaxPool', 'AvgPool']) {
    const previous = previousKernel(name);
    const onCpu = tf.getKernel(name, 'cpu');
    o.kernel(kernelConfig(name, 'wasm', (args) => {
      const out = previous(args) as tf.TensorInfo;
      const heap = heapFor(args.backend);
      if (!onCpu || !heap || args.inputs.x.dtype !== 'float32' || !heap.kernels.hasNegativeInfinity(heap.offset(out), tf.util.sizeFromShape(out.shape))) return out;
      // Rare (bad data, a diverged run, or a true -Infinity): cpu's values, which are right.
      args.backend.disposeData(out.dataId);
      return runOnCpu(onCpu, args);
    }));
  }
}

/** out = clamp(x, lo, hi), NaN kept; `out` may be `x` (in place). */
function clampInto(heap: WasmHeap, out: tf.TensorInfo, x: tf.TensorInfo, lo: number, hi: number): void {
  const [to, from] = [heap.offset(out), heap.offset(x)];
  runElementwise(heap, 'clamp', tf.util.sizeFromShape(x.shape), (start, n) => [to + 4 * start, from + 4 * start, lo, hi, n]);
}
