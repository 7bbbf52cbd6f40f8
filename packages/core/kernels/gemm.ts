// The matrix product on float32 buffers of the tfjs wasm heap (byte offsets), row-major,
// c[M,N] = a[M,K] b[K,N]. Each output element is summed over k in order, as mul then add
// in float32 (no fused multiply-add), from zero: the order and rounding of XNNPACK's own
// kernel, so the values are the same.
//
// Blocked for the caches: a KC x NC block of b is copied into `scratch` as strips of 8
// columns with each strip's rows contiguous, and stays in L2 while every row of a passes
// over it (b's rows are often a power of two bytes apart, which in place maps a strip's
// rows onto the same few cache sets); the 4 rows of a that a tile reads stay in L1. The
// last strip, when N is not a multiple of 8, is padded with zeros and its tiles go
// through a small buffer. Without scratch (0) b is read as it lies, which pays for a few
// rows of a only (they would not repay the copy).

const KC = 256;
const NC = 256;
/** Columns of c per pass of the one-row in-place product (2 KiB of c in L1). */
const IN_PLACE_COLUMNS = 512;
/** Bytes of `scratch`: the packed block, then a 4 x 8 tile (wasm-heap.ts's GEMM_SCRATCH_BYTES). */
const TILE_AT: usize = KC * NC * 4;

/** c = a b; `scratch` holds a packed block of b (KC x NC floats and a 4 x 8 tile), or is 0. */
export function gemm(c: usize, a: usize, b: usize, M: i32, K: i32, N: i32, scratch: usize): void {
  if (scratch == 0) {
    gemmInPlace(c, a, b, M, K, N);
    return;
  }
  const rowA = <usize>K << 2;
  const rowB = <usize>N << 2;
  const rowC = <usize>N << 2;
  const tile = scratch + TILE_AT;
  for (let j0 = 0; j0 < N; j0 += NC) {
    const j1 = min(j0 + NC, N);
    for (let k0 = 0; k0 < K; k0 += KC) {
      const k1 = min(k0 + KC, K);
      const depth = <usize>(k1 - k0);
      const first = k0 == 0;
      for (let j = j0; j < j1; j += 8) packStrip(scratch + ((<usize>(j - j0) * depth) << 2), b + ((<usize>k0 * N + j) << 2), rowB, depth, min(8, N - j));
      for (let i = 0; i < M; i += 4) {
        const rows = min(4, M - i);
        const pa = a + ((<usize>i * K + k0) << 2);
        for (let j = j0; j < j1; j += 8) {
          const strip = scratch + ((<usize>(j - j0) * depth) << 2);
          const at = c + ((<usize>i * N + j) << 2);
          const cols = min(8, N - j);
          if (cols == 8 && rows == 4) {
            tile4x8(at, rowC, pa, rowA, strip, depth, first);
          } else {
            // An edge tile: through the 4 x 8 buffer, only its rows and columns copied.
            if (!first) copyTile(tile, 32, at, rowC, rows, cols);
            if (rows == 4) tile4x8(tile, 32, pa, rowA, strip, depth, first);
            else for (let r = 0; r < rows; r++) row1x8(tile + 32 * <usize>r, pa + rowA * <usize>r, strip, depth, first);
            copyTile(at, rowC, tile, 32, rows, cols);
          }
        }
      }
    }
  }
}

/** Columns 0 .. cols of `depth` rows of b (`rowB` bytes apart) as 8 contiguous floats a row, zero past cols. */
@inline function packStrip(to: usize, from: usize, rowB: usize, depth: usize, cols: i32): void {
  if (cols == 8) {
    for (let k: usize = 0; k < depth; k++) {
      v128.store(to, v128.load(from));
      v128.store(to, v128.load(from, 16), 16);
      from += rowB;
      to += 32;
    }
    return;
  }
  for (let k: usize = 0; k < depth; k++) {
    v128.store(to, f32x4.splat(0));
    v128.store(to, f32x4.splat(0), 16);
    for (let j = 0; j < cols; j++) store<f32>(to + (<usize>j << 2), load<f32>(from + (<usize>j << 2)));
    from += rowB;
    to += 32;
  }
}

/** rows x cols floats from `from` (rows `fromRow` bytes apart) to `to` (rows `toRow` apart). */
@inline function copyTile(to: usize, toRow: usize, from: usize, fromRow: usize, rows: i32, cols: i32): void {
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) store<f32>(to + toRow * <usize>r + (<usize>j << 2), load<f32>(from + fromRow * <usize>r + (<usize>j << 2)));
  }
}

// Four rows of c (at `at`, `rowC` bytes apart), eight columns, over `depth` values of k:
// a's four values at k (rows `rowA` bytes apart) splat across lanes, times the strip's
// row k (rows `stride` bytes apart: 32 packed). `first`: from zero, else onto c's sums.
@inline function tile4x8(at: usize, rowC: usize, pa: usize, rowA: usize, strip: usize, depth: usize, first: bool, stride: usize = 32): void {
  let c00 = first ? f32x4.splat(0) : v128.load(at);
  let c01 = first ? f32x4.splat(0) : v128.load(at, 16);
  let c10 = first ? f32x4.splat(0) : v128.load(at + rowC);
  let c11 = first ? f32x4.splat(0) : v128.load(at + rowC, 16);
  let c20 = first ? f32x4.splat(0) : v128.load(at + 2 * rowC);
  let c21 = first ? f32x4.splat(0) : v128.load(at + 2 * rowC, 16);
  let c30 = first ? f32x4.splat(0) : v128.load(at + 3 * rowC);
  let c31 = first ? f32x4.splat(0) : v128.load(at + 3 * rowC, 16);
  let pb = strip;
  const end = strip + depth * stride;
  while (pb < end) {
    const b0 = v128.load(pb);
    const b1 = v128.load(pb, 16);
    const a0 = v128.load32_splat(pa);
    const a1 = v128.load32_splat(pa + rowA);
    const a2 = v128.load32_splat(pa + 2 * rowA);
    const a3 = v128.load32_splat(pa + 3 * rowA);
    c00 = f32x4.add(c00, f32x4.mul(a0, b0));
    c01 = f32x4.add(c01, f32x4.mul(a0, b1));
    c10 = f32x4.add(c10, f32x4.mul(a1, b0));
    c11 = f32x4.add(c11, f32x4.mul(a1, b1));
    c20 = f32x4.add(c20, f32x4.mul(a2, b0));
    c21 = f32x4.add(c21, f32x4.mul(a2, b1));
    c30 = f32x4.add(c30, f32x4.mul(a3, b0));
    c31 = f32x4.add(c31, f32x4.mul(a3, b1));
    pa += 4;
    pb += stride;
  }
  v128.store(at, c00);
  v128.store(at, c01, 16);
  v128.store(at + rowC, c10);
  v128.store(at + rowC, c11, 16);
  v128.store(at + 2 * rowC, c20);
  v128.store(at + 2 * rowC, c21, 16);
  v128.store(at + 3 * rowC, c30);
  v128.store(at + 3 * rowC, c31, 16);
}

// One row of c, eight columns of the strip (the rows past the last multiple of 4).
@inline function row1x8(at: usize, pa: usize, strip: usize, depth: usize, first: bool, stride: usize = 32): void {
  let c0 = first ? f32x4.splat(0) : v128.load(at);
  let c1 = first ? f32x4.splat(0) : v128.load(at, 16);
  let pb = strip;
  const end = strip + depth * stride;
  while (pb < end) {
    const av = v128.load32_splat(pa);
    c0 = f32x4.add(c0, f32x4.mul(av, v128.load(pb)));
    c1 = f32x4.add(c1, f32x4.mul(av, v128.load(pb, 16)));
    pa += 4;
    pb += stride;
  }
  v128.store(at, c0);
  v128.store(at, c1, 16);
}

/**
 * c = a b reading b in place (few rows of a). One row of a wide b: for each row k of b,
 * in order, c gets a[k] times it, over column chunks that stay in L1; b streams by rows
 * (a strip down its columns would hit the same few cache sets when its rows are a power
 * of two bytes apart: W [2048,2048] 2.6 -> 1.7 ms). Otherwise the blocked strips of the
 * packed product, read from b itself, so that each value of b serves up to four rows
 * from registers. Either way each element of c is summed over k in order.
 */
function gemmInPlace(c: usize, a: usize, b: usize, M: i32, K: i32, N: i32): void {
  const rowB = <usize>N << 2;
  if (M == 1 && N >= 2 * IN_PLACE_COLUMNS) {
    const N4 = N & ~3;
    memory.fill(c, 0, rowB);
    for (let j0 = 0; j0 < N; j0 += IN_PLACE_COLUMNS) {
      const j1 = min(j0 + IN_PLACE_COLUMNS, N);
      const j4 = min(j1, N4);
      for (let k = 0; k < K; k++) {
        const pb = b + <usize>k * rowB;
        const av = load<f32>(a + (<usize>k << 2));
        const a4 = f32x4.splat(av);
        let j = j0;
        for (; j < j4; j += 4) {
          const o = <usize>j << 2;
          v128.store(c + o, f32x4.add(v128.load(c + o), f32x4.mul(a4, v128.load(pb + o))));
        }
        for (; j < j1; j++) {
          const o = <usize>j << 2;
          store<f32>(c + o, load<f32>(c + o) + av * load<f32>(pb + o));
        }
      }
    }
    return;
  }
  const N8 = N & ~7;
  const rowA = <usize>K << 2;
  for (let j0 = 0; j0 < N8; j0 += NC) {
    const j1 = min(j0 + NC, N8);
    for (let k0 = 0; k0 < K; k0 += KC) {
      const depth = <usize>(min(k0 + KC, K) - k0);
      const first = k0 == 0;
      for (let i = 0; i < M; i += 4) {
        const pa = a + <usize>i * rowA + (<usize>k0 << 2);
        for (let j = j0; j < j1; j += 8) {
          const at = c + ((<usize>i * N + j) << 2);
          const strip = b + ((<usize>k0 * N + j) << 2);
          if (M - i >= 4) tile4x8(at, rowB, pa, rowA, strip, depth, first, rowB);
          else for (let r = 0; r < M - i; r++) row1x8(at + rowB * <usize>r, pa + rowA * <usize>r, strip, depth, first, rowB);
        }
      }
    }
  }
  // Columns past the last multiple of 8, one element at a time.
  for (let i = 0; i < M; i++) {
    for (let j = N8; j < N; j++) {
      let acc: f32 = 0;
      for (let k = 0; k < K; k++) acc = acc + load<f32>(a + ((<usize>i * K + k) << 2)) * load<f32>(b + ((<usize>k * N + j) << 2));
      store<f32>(c + ((<usize>i * N + j) << 2), acc);
    }
  }
}

/**
 * c = a b^T for a [M, K] and b [N, K], both row-major, for a few rows of a (a batch of
 * one to a handful): no transpose of b in memory. Four rows of b are read four depths at
 * a time and transposed in registers, so each lane is one output element summed over k
 * in order, as mul then add from zero: the values of XNNPACK's kernel (and of gemm).
 */
export function gemmNT(c: usize, a: usize, b: usize, M: i32, K: i32, N: i32): void {
  const N4 = N & ~3;
  const K4 = K & ~3;
  const rowB = <usize>K << 2;
  for (let n = 0; n < N4; n += 4) {
    const pb = b + ((<usize>n * K) << 2);
    for (let i = 0; i < M; i++) {
      const pa = a + ((<usize>i * K) << 2);
      let acc = f32x4.splat(0);
      let k = 0;
      for (; k < K4; k += 4) {
        const o = <usize>k << 2;
        const r0 = v128.load(pb + o);
        const r1 = v128.load(pb + rowB + o);
        const r2 = v128.load(pb + 2 * rowB + o);
        const r3 = v128.load(pb + 3 * rowB + o);
        const t0 = v128.shuffle<f32>(r0, r1, 0, 4, 1, 5);
        const t1 = v128.shuffle<f32>(r0, r1, 2, 6, 3, 7);
        const t2 = v128.shuffle<f32>(r2, r3, 0, 4, 1, 5);
        const t3 = v128.shuffle<f32>(r2, r3, 2, 6, 3, 7);
        // Column k + d of the four rows, one depth after the other.
        acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(pa + o), v128.shuffle<f32>(t0, t2, 0, 1, 4, 5)));
        acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(pa + o + 4), v128.shuffle<f32>(t0, t2, 2, 3, 6, 7)));
        acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(pa + o + 8), v128.shuffle<f32>(t1, t3, 0, 1, 4, 5)));
        acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(pa + o + 12), v128.shuffle<f32>(t1, t3, 2, 3, 6, 7)));
      }
      for (; k < K; k++) {
        const o = <usize>k << 2;
        let column = f32x4.splat(load<f32>(pb + o));
        column = f32x4.replace_lane(column, 1, load<f32>(pb + rowB + o));
        column = f32x4.replace_lane(column, 2, load<f32>(pb + 2 * rowB + o));
        column = f32x4.replace_lane(column, 3, load<f32>(pb + 3 * rowB + o));
        acc = f32x4.add(acc, f32x4.mul(v128.load32_splat(pa + o), column));
      }
      v128.store(c + ((<usize>i * N + n) << 2), acc);
    }
  }
  // Rows of b past the last multiple of 4, one output element at a time.
  for (let n = N4; n < N; n++) {
    for (let i = 0; i < M; i++) {
      let acc: f32 = 0;
      for (let k = 0; k < K; k++) {
        acc = acc + load<f32>(a + ((<usize>i * K + k) << 2)) * load<f32>(b + ((<usize>n * K + k) << 2));
      }
      store<f32>(c + ((<usize>i * N + n) << 2), acc);
    }
  }
}
