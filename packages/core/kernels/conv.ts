// Convolution helpers on float32 buffers of the tfjs wasm heap (byte offsets), NHWC.

/**
 * The input patches of a 2-D convolution (dilation 1), transposed: one row per filter
 * tap and input channel, in the filter's order (kh, kw, ci), one column per output
 * position and batch element, in the order (oh, ow, b), zero outside the input:
 *
 *   out[(kh KW + kw) CI + ci, (oh OW + ow) B + b] = xT[ci, oh sh + kh - top, ow sw + kw - left, b]
 *
 * from the input laid out as xT [CI, H, W, B] (the caller transposes it once): then a
 * row's columns for one output row are whole runs of xT (all of (ow, b) at stride 1, B
 * values otherwise), copied in bulk instead of gathered one value at a time with a
 * stride of H W CI (which took 2-3 ms for the MNIST CNN's second layer).
 *
 * Rows t0 .. t1 only (threads take row ranges). The filter gradient is then the product
 * of these rows with dy laid out as [(oh, ow, b), co], summed over (oh, ow, b) in that
 * order: the order of the shim's route (a convolution with the batch as the contracted
 * channel), so its values are the route's.
 */
export function im2colT(out: usize, xT: usize, B: i32, H: i32, W: i32, CI: i32, OH: i32, OW: i32, KW: i32, sh: i32, sw: i32, top: i32, left: i32, t0: i32, t1: i32): void {
  const runBytes = <usize>B << 2;
  const rowBytes = <usize>(OW * B) << 2;
  let o = out + <usize>t0 * <usize>OH * rowBytes;
  for (let t = t0; t < t1; t++) {
    const ci = t % CI;
    const tap = t / CI;
    const kh = tap / KW;
    const kw = tap % KW;
    // Output columns whose input column w = ow sw + kw - left lies inside [0, W).
    let ow0 = 0;
    while (ow0 < OW && ow0 * sw + kw - left < 0) ow0++;
    let ow1 = ow0;
    while (ow1 < OW && ow1 * sw + kw - left < W) ow1++;
    for (let oh = 0; oh < OH; oh++) {
      const h = oh * sh + kh - top;
      if (h < 0 || h >= H) {
        memory.fill(o, 0, rowBytes);
        o += rowBytes;
        continue;
      }
      const plane = xT + ((<usize>(ci * H + h) * <usize>W) << 2) * <usize>B;
      memory.fill(o, 0, <usize>ow0 * runBytes);
      const inside = o + <usize>ow0 * runBytes;
      const first = plane + <usize>(ow0 * sw + kw - left) * runBytes;
      if (sw == 1) memory.copy(inside, first, <usize>(ow1 - ow0) * runBytes);
      else for (let ow = ow0; ow < ow1; ow++) memory.copy(inside + <usize>(ow - ow0) * runBytes, first + <usize>((ow - ow0) * sw) * runBytes, runBytes);
      memory.fill(o + <usize>ow1 * runBytes, 0, <usize>(OW - ow1) * runBytes);
      o += rowBytes;
    }
  }
}
