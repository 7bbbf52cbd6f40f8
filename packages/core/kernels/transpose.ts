// Transposes on raw float32/int32 buffers (4-byte elements) of the tfjs wasm heap.
// Pointers are byte offsets; strides count elements.

/** out[j * outStride + i] = src[i * srcStride + j] for i < rows, j < cols, in 4x4 SIMD tiles. */
export function transposeTile(out: usize, src: usize, rows: i32, cols: i32, srcStride: i32, outStride: i32): void {
  const BLOCK = 32; // 32 x 32 elements stay in L1 on both sides
  const rows4 = rows & ~3;
  const cols4 = cols & ~3;
  for (let i0 = 0; i0 < rows4; i0 += BLOCK) {
    const iEnd = min(i0 + BLOCK, rows4);
    for (let j0 = 0; j0 < cols4; j0 += BLOCK) {
      const jEnd = min(j0 + BLOCK, cols4);
      for (let i = i0; i < iEnd; i += 4) {
        for (let j = j0; j < jEnd; j += 4) {
          const s = src + ((<usize>i * srcStride + j) << 2);
          const ss = <usize>srcStride << 2;
          const r0 = v128.load(s);
          const r1 = v128.load(s + ss);
          const r2 = v128.load(s + 2 * ss);
          const r3 = v128.load(s + 3 * ss);
          const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
          const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
          const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
          const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
          const o = out + ((<usize>j * outStride + i) << 2);
          const os = <usize>outStride << 2;
          v128.store(o, v128.shuffle<f32>(t0, t2, 0, 1, 4, 5));
          v128.store(o + os, v128.shuffle<f32>(t0, t2, 2, 3, 6, 7));
          v128.store(o + 2 * os, v128.shuffle<f32>(t1, t3, 0, 1, 4, 5));
          v128.store(o + 3 * os, v128.shuffle<f32>(t1, t3, 2, 3, 6, 7));
        }
      }
    }
  }
  // The ragged right columns and bottom rows, element by element.
  for (let i = 0; i < rows; i++) {
    for (let j = i < rows4 ? cols4 : 0; j < cols; j++) {
      store<u32>(out + ((<usize>j * outStride + i) << 2), load<u32>(src + ((<usize>i * srcStride + j) << 2)));
    }
  }
}

/**
 * A permutation of a row-major tensor of 4-byte elements, set up by the caller in `meta`
 * (i32 words): [0] the number n <= 8 of outer axes, [1] rows, [2] cols, [3] source row
 * stride, [4] output column stride, [5] 1 when the innermost axis stays innermost (rows
 * are then copied whole: cols elements each); outer axis k: [8 + k] its size, [16 + k]
 * its source stride, [24 + k] its output stride, [32 + k] scratch for its index. Each
 * outer index addresses one rows x cols tile.
 */
export function permute(out: usize, src: usize, meta: usize): void {
  const n = load<i32>(meta);
  const rows = load<i32>(meta + 4);
  const cols = load<i32>(meta + 8);
  const srcStride = load<i32>(meta + 12);
  const outStride = load<i32>(meta + 16);
  const copyRows = load<i32>(meta + 20) == 1;
  if (copyRows && n == 2) {
    copyRows2(out, src, meta, cols);
    return;
  }
  for (let k = 0; k < n; k++) store<i32>(meta + ((32 + <usize>k) << 2), 0);
  while (true) {
    let inOff: usize = 0;
    let outOff: usize = 0;
    for (let k = 0; k < n; k++) {
      const i = <usize>load<i32>(meta + ((32 + <usize>k) << 2));
      inOff += i * <usize>load<i32>(meta + ((16 + <usize>k) << 2));
      outOff += i * <usize>load<i32>(meta + ((24 + <usize>k) << 2));
    }
    if (copyRows) memory.copy(out + (outOff << 2), src + (inOff << 2), <usize>cols << 2);
    else transposeTile(out + (outOff << 2), src + (inOff << 2), rows, cols, srcStride, outStride);
    let k = n - 1;
    for (; k >= 0; k--) {
      const at = meta + ((32 + <usize>k) << 2);
      const next = load<i32>(at) + 1;
      if (next < load<i32>(meta + ((8 + <usize>k) << 2))) {
        store<i32>(at, next);
        break;
      }
      store<i32>(at, 0);
    }
    if (k < 0) return;
  }
}

/**
 * permute's whole-row copies over two outer axes (e.g. [A, P, C] -> [P, A, C], a
 * convolution's dy laid out by position): the generic loop's index bookkeeping per row
 * cost more than copying a short row.
 */
function copyRows2(out: usize, src: usize, meta: usize, cols: i32): void {
  const size0 = load<i32>(meta + 32);
  const size1 = load<i32>(meta + 36);
  const in0 = <usize>load<i32>(meta + 64) << 2;
  const in1 = <usize>load<i32>(meta + 68) << 2;
  const out0 = <usize>load<i32>(meta + 96) << 2;
  const out1 = <usize>load<i32>(meta + 100) << 2;
  const bytes = <usize>cols << 2;
  const vectors = (cols & 3) == 0;
  for (let i = 0; i < size0; i++) {
    let from = src + <usize>i * in0;
    let to = out + <usize>i * out0;
    for (let j = 0; j < size1; j++) {
      if (vectors) {
        for (let o: usize = 0; o < bytes; o += 16) v128.store(to + o, v128.load(from + o));
      } else {
        memory.copy(to, from, bytes);
      }
      from += in1;
      to += out1;
    }
  }
}
