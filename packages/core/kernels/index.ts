// tapfit's own wasm kernels (AssemblyScript, SIMD128), run on the tfjs wasm backend's
// memory: every pointer is a byte offset into that heap. No static data, no allocation:
// the module imports the heap and must not write anywhere the caller did not hand it.
export { transposeTile, permute } from './transpose';
export { axpby, adam } from './update';
export { sumRows } from './reduce';
export { maxPoolGradTiled } from './pool';
export { gemm, gemmNT } from './gemm';
export { im2colT } from './conv';
export { add, addRows, scale, reluGrad, relu, clamp, hasNegativeInfinity } from './elementwise';
