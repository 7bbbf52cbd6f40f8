// Backend selection, the wasm and webgpu training shims, wasm's fast kernels and threads, and the memory guard.
export { selectBackend, describeActiveBackend, BACKEND_PREFERENCES, BACKEND_ENV } from './select';
export { WASM_THREADS_ENV, autoThreads } from './thread-count';
export type { ThreadChoice, MachineLoad } from './thread-count';
export type { BackendPreference, BackendName, BackendSelection, SelectBackendOptions } from './select';
export {
  installWasmShim,
  uninstallWasmShim,
  wasmShimInstalled,
  installGradientFixes,
  uninstallGradientFixes,
  WASM_SHIM_KERNELS,
  BRIDGED_TO_CPU,
  NOT_BRIDGED,
} from './wasm-shim';
export { installWebgpuShim, uninstallWebgpuShim, webgpuShimInstalled, WEBGPU_SHIM_KERNELS, WEBGPU_BRIDGED_TO_CPU, WEBGPU_HIGH_RANK_KERNELS, WEBGPU_CUMULATIVE_KERNELS } from './webgpu-shim';
export { TENSORFLOW_MISSING_KERNELS, type TensorflowPackage } from './tensorflow';
export { probeWebgpuAdapter, activeWebgpuAdapter, releaseDroppedGpuObjects, classifyAdapter, formatAdapter, WEBGPU_PACKAGES } from './webgpu';
export type { GpuAdapter, AdapterProbe, AdapterLike, AdapterInfoLike } from './webgpu';
export { installWasmFastKernels, uninstallWasmFastKernels, wasmFastKernelsInstalled, WASM_FAST_KERNELS } from './fast-kernels';
export { installMemoryGuard, getMemoryGuard, DEFAULT_WASM_BUDGET_BYTES, formatBytes } from './memory-guard';
export type { MemoryGuard } from './memory-guard';
export { missingKernelError } from './missing-kernel';
export { installTapeOrder } from './tape-order';
export { installTapeRelease } from './tape-release';
export { assertEngineInternals, checkEngineInternals, registeredLayerClass, uniqueVariableName, SUPPORTED_TFJS } from './engine-internals';
