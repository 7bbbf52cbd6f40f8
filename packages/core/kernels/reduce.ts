// Reductions on float32 buffers of the tfjs wasm heap (byte offsets).

/**
 * out[c] = sum over r of src[r * cols + c]: a sum over the leading axes (a bias
 * gradient) in one pass, without the transpose the stock kernel makes first. Each
 * column is accumulated in row order in float32, as the stock kernel does.
 */
export function sumRows(out: usize, src: usize, rows: i32, cols: i32): void {
  const rowBytes = <usize>cols << 2;
  const cols16 = cols & ~15;
  let c = 0;
  // 16 columns (one cache line) at a time, kept in four registers down all the rows.
  for (; c < cols16; c += 16) {
    let a0 = f32x4.splat(0);
    let a1 = f32x4.splat(0);
    let a2 = f32x4.splat(0);
    let a3 = f32x4.splat(0);
    let p = src + (<usize>c << 2);
    for (let r = 0; r < rows; r++) {
      a0 = f32x4.add(a0, v128.load(p));
      a1 = f32x4.add(a1, v128.load(p, 16));
      a2 = f32x4.add(a2, v128.load(p, 32));
      a3 = f32x4.add(a3, v128.load(p, 48));
      p += rowBytes;
    }
    const o = out + (<usize>c << 2);
    v128.store(o, a0);
    v128.store(o, a1, 16);
    v128.store(o, a2, 32);
    v128.store(o, a3, 48);
  }
  for (; c < cols; c++) {
    let acc: f32 = 0;
    let p = src + (<usize>c << 2);
    for (let r = 0; r < rows; r++) {
      acc += load<f32>(p);
      p += rowBytes;
    }
    store<f32>(out + (<usize>c << 2), acc);
  }
}
