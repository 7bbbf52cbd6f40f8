import { useKernelRunner } from '../../transforms/fused-updates';
import { runKernel } from '../engine-internals';
import { Overrides } from '../wasm-shim/overrides';
import { FAST_COMPARE_KERNELS, installFastCompare } from './compare';
import { installFastConvFilterGrad } from './conv-filter-grad';
import { installElementwise } from './elementwise';
import { installFastGather } from './gather';
import { installLazyConvGradients } from './lazy-conv-grad';
import { installMatMulOrder } from './matmul-order';
import { installNanPropagation, NAN_PROPAGATING_KERNELS } from './nan-propagation';
import { installFastMaxPoolGrad } from './max-pool-grad';
import { installRelu } from './relu';
import { installFastReverse } from './reverse';
import { installSharedIdentity } from './shared-identity';
import { installFastSlice, installFastUnpack } from './slice';
import { installSumLeading } from './sum-leading';
import { installFastTile } from './tile';
import { installFastTranspose } from './transpose';
import { installUpdateKernels } from './update-kernels';

let fast: Overrides | null = null;

/**
 * Faster training kernels for wasm, on top of the training shim (which installs them):
 * tapfit's own SIMD kernels (kernels/*.ts, compiled to wasm and run on the wasm
 * backend's heap) and cheaper orders of stock kernels. Same values as without them
 * (to float32 rounding where an op is split; fused updates store subnormals as zero).
 *
 * - Identity, same-dtype Cast: share the data instead of copying (the tape saves clones)
 * - Transpose (float32, int32): SIMD tiles
 * - Reverse: whole blocks and one offset per block (stock: ~30 ns an element, and wrong on
 *   bool, writing past its output)
 * - Equal, NotEqual, Greater(Equal), Less(Equal), Maximum, Minimum (float32, int32): merged
 *   axes and a loop with steps 0 or 1 (stock: 77-86 ns an element once broadcast)
 * - Tile (float32, int32, bool): block copies (stock: about 45 ns an element)
 * - Slice and Unpack (tf.unstack): run copies in place (stock: a copy of the whole input first, and about 800 ns
 *   an element above rank 4)
 * - GatherV2 without batch dimensions: row copies (stock: about 45 ns an element)
 * - Sum, Mean over a block of axes before the last (bias gradients, batch statistics, global
 *   average pooling): row sums, no transpose
 * - MaxPoolGrad with window == stride: one pass
 * - Conv2DBackpropFilter: the transposed input patches times dy, one product (no
 *   XNNPACK filter packing), split over the threads
 * - BatchMatMul / _FusedMatMul, plain and transposeB (and transposeA for weight
 *   gradients): tapfit's own blocked product, split over the threads
 * - TapfitScaledSum, TapfitAdamMoments: the fused updates of momentum and Adam
 * - Add, Multiply by a scalar (float32, large): split over the threads (none with one);
 *   a bias added along the last axis: one pass
 * - Relu: one pass; its gradient: one kernel (TapfitReluGrad) instead of Step and Multiply
 * - NaN stays NaN in ClipByValue, Relu6, relu/relu6 fused into products, MaxPool and AvgPool
 *   (XNNPACK made it a number, hiding divergence from the non-finite guard: nan-propagation.ts)
 * - tf.fused.conv2d with a linear activation: conv2d + add, so that a first layer's input
 *   gradient, which nothing reads, is not computed
 *
 * `uninstallWasmFastKernels()` takes them out again (benchmarks measure both). Idempotent.
 */
export function installWasmFastKernels(): void {
  if (fast) return;
  const o = new Overrides();
  try {
    installSharedIdentity(o);
    installFastTranspose(o);
    installFastReverse(o);
    installFastCompare(o);
    installFastTile(o);
    installFastSlice(o);
    installFastUnpack(o);
    installFastGather(o);
    installSumLeading(o);
    installFastMaxPoolGrad(o);
    installFastConvFilterGrad(o);
    installMatMulOrder(o);
    installUpdateKernels(o);
    installElementwise(o);
    installRelu(o);
    installLazyConvGradients(o);
    installNanPropagation(o); // last: it wraps the products the others registered
  } catch (err) {
    o.restore();
    throw err;
  }
  fast = o;
  useKernelRunner((kernel, inputs, attrs) => runKernel(kernel, inputs, attrs));
}

export function uninstallWasmFastKernels(): void {
  fast?.restore();
  fast = null;
}

export function wasmFastKernelsInstalled(): boolean {
  return fast != null;
}

/** Kernels the fast set registers for wasm. */
export const WASM_FAST_KERNELS: readonly string[] = ['Identity', 'Cast', 'Transpose', 'Reverse', 'Sum', 'Mean', 'MaxPoolGrad', 'Conv2DBackpropFilter', 'BatchMatMul', '_FusedMatMul', 'TapfitScaledSum', 'TapfitAdamMoments', 'Add', 'Multiply', 'Relu', 'TapfitReluGrad', 'Tile', 'Slice', 'Unpack', 'GatherV2', ...FAST_COMPARE_KERNELS, ...NAN_PROPAGATING_KERNELS.filter((k) => k !== '_FusedMatMul')];
