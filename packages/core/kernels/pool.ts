// Pooling gradients on float32 buffers of the tfjs wasm heap (byte offsets), NHWC.

/**
 * The max-pool gradient for windows that tile the input (window == stride): each
 * window's dy goes to its first maximum in row-major order, among the cells inside the
 * input (the cpu kernel's rule; a window with no value above -Infinity passes nothing).
 * Four channels at a time. dx must hold B*H*W*C floats; cells no window covers get 0.
 * Batch elements b0 .. b1 only (threads take batch ranges: windows never cross them).
 */
export function maxPoolGradTiled(dx: usize, x: usize, dy: usize, B: i32, H: i32, W: i32, C: i32, OH: i32, OW: i32, KH: i32, KW: i32, top: i32, left: i32, b0: i32, b1: i32): void {
  const batchBytes = <usize>H * W * C << 2;
  memory.fill(dx + <usize>b0 * batchBytes, 0, <usize>(b1 - b0) * batchBytes);
  const C4 = C & ~3;
  for (let b = b0; b < b1; b++) {
    for (let oh = 0; oh < OH; oh++) {
      const h0 = oh * KH - top;
      const hFrom = max(h0, 0);
      const hTo = min(h0 + KH, H);
      for (let ow = 0; ow < OW; ow++) {
        const w0 = ow * KW - left;
        const wFrom = max(w0, 0);
        const wTo = min(w0 + KW, W);
        const dyAt = dy + ((((<usize>b * OH + oh) * OW + ow) * C) << 2);
        let c = 0;
        for (; c < C4; c += 4) {
          let best = f32x4.splat(-Infinity);
          let where = i32x4.splat(-1);
          for (let h = hFrom; h < hTo; h++) {
            for (let w = wFrom; w < wTo; w++) {
              const cell = ((<usize>b * H + h) * W + w) * C + c;
              const v = v128.load(x + (cell << 2));
              const greater = f32x4.gt(v, best);
              best = v128.bitselect(v, best, greater);
              where = v128.bitselect(i32x4.splat(<i32>cell), where, greater);
            }
          }
          const g = v128.load(dyAt + (<usize>c << 2));
          for (let h = hFrom; h < hTo; h++) {
            for (let w = wFrom; w < wTo; w++) {
              const cell = ((<usize>b * H + h) * W + w) * C + c;
              v128.store(dx + (cell << 2), v128.and(g, i32x4.eq(where, i32x4.splat(<i32>cell))));
            }
          }
        }
        for (; c < C; c++) {
          let best: f32 = -Infinity;
          let where: isize = -1;
          for (let h = hFrom; h < hTo; h++) {
            for (let w = wFrom; w < wTo; w++) {
              const cell = ((<usize>b * H + h) * W + w) * C + c;
              const v = load<f32>(x + (cell << 2));
              if (v > best) {
                best = v;
                where = <isize>cell;
              }
            }
          }
          if (where >= 0) store<f32>(dx + (<usize>where << 2), load<f32>(dyAt + (<usize>c << 2)));
        }
      }
    }
  }
}
