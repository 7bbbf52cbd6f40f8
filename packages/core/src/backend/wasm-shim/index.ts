import { installWasmFastKernels, uninstallWasmFastKernels } from '../fast-kernels';
import { installMissingKernelErrors, explainMissingKernel } from '../missing-kernel';
import { loadWasmPackage } from '../wasm';
import { installConv1dCausalLayer } from './conv1d-causal-layer';
import { installConv2DBackprop } from './conv2d-backprop';
import { installCumulativeAxis } from './cumulative-axis';
import { installCumsumGrad } from './cumsum-grad';
import { BRIDGED_TO_CPU, installCpuBridge, NOT_BRIDGED } from './cpu-bridge';
import { installAvgPoolGrad } from './avg-pool-grad';
import { installBatchNormBroadcast } from './batch-norm-broadcast';
import { installBatchNormGrad } from './batch-norm-grad';
import { installBatchNormLayerFix } from './batch-norm-layer';
import { installDepthwiseBackprop } from './depthwise-backprop';
import { installDilatedConvGrad } from './dilated-conv-grad';
import { installDilatedFusedConv } from './dilated-fused-conv';
import { installEinsum } from './einsum';
import { installMatMulWithoutTransposeFlags } from './matmul-transpose';
import { installMaxPoolGrad } from './max-pool-grad';
import { installMissingGradients } from './missing-gradients';
import { installOneHotDtype } from './one-hot-dtype';
import { installOpReplacements } from './op-replacements';
import { installProdGradAxes } from './prod-grad-axes';
import { Overrides } from './overrides';
import { installResizeBilinearGradShape } from './resize-bilinear-grad';
import { installResizeNearestGrad } from './resize-nearest-grad';
import { installResizingLayerFix } from './resizing-layer';
import { installBoolReverse } from './reverse';
import { installSegmentSum } from './segment-sum';
import { installStridedSliceShrinkFix } from './strided-slice-shrink';
import { installTileGrad } from './tile-grad';
import { installTransformBatch } from './transform-batch';
import { installDtypeRoutes, WRONG_FOR_SOME_DTYPES } from './wrong-dtypes';
import { HIGH_RANK_BINARY_KERNELS, installXnnpackRefusals } from './xnnpack-refusals';
import { installEmptyConvGradients, installWrongValueFixes, WRONG_VALUE_KERNELS } from './wrong-values';

export { BRIDGED_TO_CPU, NOT_BRIDGED } from './cpu-bridge';
export { resizeNearestAdjoint } from './resize-nearest-grad';

let shim: Overrides | null = null;
let fixes: Overrides | null = null;

/**
 * Fixes of tfjs that hold on every backend, which `selectBackend` installs whatever it
 * picks (idempotent; docs/backends.md says what each fixes and how it was found):
 *
 * - gradients tfjs gets wrong: resizeNearestNeighbor (batch > 1, cpu) and resizeBilinear
 *   (non-square, cpu), dilated conv2d / depthwiseConv2d and tf.fused.conv2d, avg-pool
 *   borders, cumsum along any axis, prod with negative axes, batch norm with statistics of
 *   the input's rank, tile (one sum per tiled axis instead of a slice and add per copy);
 * - gradients tfjs lacks (missing-gradients.ts): comparisons, strided slices, ND gathers
 *   and scatters, top-k, depth-to-space, mod, sparse segment reductions, 3-D transposed
 *   convolutions, cumprod, einsum, crop-and-resize, and the gradients of gradient kernels
 *   (second-order-gradients.ts);
 * - kernels with wrong values: Einsum, Cumsum / Cumprod with negative axes, StridedSlice
 *   with shrunk and strided axes, FusedBatchNorm with broadcast statistics, Transform of a
 *   batch (cpu; the wasm shim and the webgpu shim cover their backends), and the one-pass
 *   UnsortedSegmentSum for cpu;
 * - ops composed in JavaScript (op-replacements.ts): softmax on any axis, divNoNan's
 *   gradient, matrix norms, batchNorm without scale or offset, NCHW convolutions;
 * - tfjs-layers: Resizing in a model, BatchNormalization with scale or center off,
 *   Conv1D with causal padding.
 */
export function installGradientFixes(): void {
  if (fixes) return;
  fixes = apply((o) => {
    installResizeNearestGrad(o, ['cpu']);
    installResizeBilinearGradShape(o, ['cpu']);
    installDilatedConvGrad(o);
    installDilatedFusedConv(o);
    installAvgPoolGrad(o);
    installCumsumGrad(o);
    installMissingGradients(o);
    installStridedSliceShrinkFix(o, ['cpu']);
    installSegmentSum(o, ['cpu']);
    installEinsum(o, ['cpu']);
    installCumulativeAxis(o, ['cpu']);
    installProdGradAxes(o);
    installResizingLayerFix(o);
    installBatchNormLayerFix(o);
    installBatchNormGrad(o);
    installBatchNormBroadcast(o, ['cpu']);
    installTransformBatch(o, ['cpu']);
    installConv1dCausalLayer(o);
    installOpReplacements(o);
    installTileGrad(o);
  });
}

export function gradientFixesInstalled(): boolean {
  return fixes != null;
}

/** Also takes out the fast kernels, which sit on top of the fixes (the lazy conv route wraps the fixed `tf.fused.conv2d`). */
export function uninstallGradientFixes(): void {
  uninstallWasmFastKernels();
  fixes?.restore();
  fixes = null;
}

/**
 * The wasm training shim: kernels that make training on tfjs-backend-wasm work
 * and run fast. `selectBackend('wasm')` installs it; call this yourself if you
 * set the backend with tf.setBackend. It loads @tensorflow/tfjs-backend-wasm
 * (which registers 'wasm' as the highest-priority backend), so set your backend
 * explicitly. Also installs `installGradientFixes`. Idempotent.
 *
 * - BatchMatMul, _FusedMatMul: explicit transposes instead of the slow transpose flags
 * - Conv2DBackpropInput, Conv2DBackpropFilter: stride-1 Conv2D composites
 * - DepthwiseConv2dNativeBackpropInput / Filter: DepthwiseConv2dNative composites
 * - UnsortedSegmentSum (the gather gradient, so Embedding's) in one pass; tfjs's cpu kernel
 *   made a pass over x per segment (also replaced on cpu, with the gradient fixes)
 * - Einsum as one batched product of wasm's own kernels; tfjs's (cpu, bridged) gave wrong
 *   results for some equations (also replaced on cpu)
 * - Cumsum, Cumprod: negative axes (threw; on cpu, a broken shape)
 * - FusedBatchNorm with statistics shaped to broadcast: composed (wrong values; also on cpu)
 * - calls XNNPACK refuses, which returned garbage: Add, Sub, Multiply, RealDiv,
 *   SquaredDifference, PadV2 above 6 dimensions (axes merged, or cpu), products with an
 *   empty dimension (cpu)
 * - cpu bridge: kernels wasm lacks (Einsum, Ragged*, StaticRegexReplace; UnsortedSegmentSum of other dtypes)
 *   or gets wrong (Conv3DBackpropInputV2, strided Conv3DBackpropFilterV2, Dilation2D and its backprops)
 * - ResizeNearestNeighborGrad: wasm's ignores halfPixelCenters
 * - MaxPoolGrad: exact composite for window == stride, cpu otherwise; MaxPool3D and its grad on cpu
 * - OneHot with a float dtype (wasm writes int32 bits)
 * - Reverse of bool tensors (wasm's reads them as 4-byte elements and writes past its output)
 * - StridedSlice, Select, ClipByValue on the dtypes wasm gets wrong: cpu bridge
 * - StridedSlice with a shrunk axis and another axis strided (wrong elements; cpu too)
 * - ResizeBilinearGrad with its height and width in the right order (as for cpu)
 * - clear errors for the kernels still missing (complex numbers, Draw)
 * - wrong values of stock kernels for some inputs (wrong-values.ts): Cast to bool, 'same'
 *   convolutions strided past their filter, Prelu with alpha along other axes, GatherV2
 *   with axes between batch dimensions and `axis`, gradients of empty convolutions
 *
 * Then the fast kernels on top (`installWasmFastKernels`); `uninstallWasmFastKernels()`
 * leaves the shim alone.
 */
export function installWasmShim(): void {
  installGradientFixes();
  installMissingKernelErrors();
  if (shim) return;
  loadWasmPackage();
  shim = apply((o) => {
    installWrongValueFixes(o); // under every other route: they call the stock kernels through these
    installMatMulWithoutTransposeFlags(o);
    installConv2DBackprop(o);
    installDepthwiseBackprop(o);
    installEmptyConvGradients(o);
    installCpuBridge(o);
    installEinsum(o, ['wasm']); // over the bridge, which it keeps for other dtypes
    installCumulativeAxis(o, ['wasm']);
    installBatchNormBroadcast(o, ['wasm']);
    installXnnpackRefusals(o); // over the transpose-flag products, under the fast kernels
    installSegmentSum(o, ['wasm']); // over the bridge, which it keeps for other dtypes
    installMaxPoolGrad(o);
    installOneHotDtype(o);
    installBoolReverse(o);
    installStridedSliceShrinkFix(o, ['wasm']); // before the dtype routes, which wrap it
    installDtypeRoutes(o);
    // wasm's own kernel ignores halfPixelCenters.
    installResizeNearestGrad(o, ['wasm']);
    installResizeBilinearGradShape(o, ['wasm']);
  });
  for (const [kernel, why] of Object.entries(NOT_BRIDGED)) explainMissingKernel(kernel, why);
  installWasmFastKernels();
}

/** Put the stock wasm kernels back (benchmarks compare both; the gradient fixes stay). */
export function uninstallWasmShim(): void {
  uninstallWasmFastKernels(); // they sit on top of the shim's kernels
  shim?.restore();
  shim = null;
}

export function wasmShimInstalled(): boolean {
  return shim != null;
}

/** Kernels the shim registers for wasm, for reports and tests. */
export const WASM_SHIM_KERNELS: readonly string[] = [
  'BatchMatMul', '_FusedMatMul', 'Conv2DBackpropInput', 'Conv2DBackpropFilter',
  'DepthwiseConv2dNativeBackpropInput', 'DepthwiseConv2dNativeBackpropFilter',
  ...BRIDGED_TO_CPU.missing, ...BRIDGED_TO_CPU.wrong, ...BRIDGED_TO_CPU.wrongWhenStrided, 'ResizeBilinearGrad',
  'ResizeNearestNeighborGrad', 'MaxPoolGrad', 'MaxPool3DGrad', 'MaxPool3D', 'OneHot', 'Reverse', 'Cumsum', 'Cumprod', 'FusedBatchNorm', ...HIGH_RANK_BINARY_KERNELS, 'PadV2', ...WRONG_FOR_SOME_DTYPES, ...WRONG_VALUE_KERNELS,
];

/** Install a group of overrides completely or not at all. */
function apply(install: (o: Overrides) => void): Overrides {
  const o = new Overrides();
  try {
    install(o);
  } catch (err) {
    o.restore();
    throw err;
  }
  return o;
}
