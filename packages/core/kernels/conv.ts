// Convolution helpers on float32 buffers of the tfjs wasm heap (byte offsets), NHWC.

/**
 * The input patches of a 2-D convolution (dilation 1), transposed: one row per filter
 * tap and input channel, in the filter's order (kh, kw, ci), one column per output
 * position and batch element, in the order (oh, ow, b), zero outside the input:
 *
 *   out[(kh KW + kw) CI + ci, (oh OW + ow) B + b] = x[b, oh sh + kh - top, ow sw + kw - left, ci]
 *
 * Rows t0 .. t1 only (threads take row ranges). The filter gradient is then the product
 * of these rows with dy laid out as [(oh, ow, b), co], summed over (oh, ow, b) in that
 * order: the order of the shim's route (a convolution with the batch as the contracted
 * channel), so its values are the route's.
 */
export function im2colT(out: usize, x: usize, B: i32, H: i32, W: i32, CI: i32, OH: i32, OW: i32, KW: i32, sh: i32, sw: i32, top: i32, left: i32, t0: i32, t1: i32): void {
  const cols = <usize>(OH * OW * B);
  const batchStride = <usize>(H * W * CI) << 2;
  let o = out + <usize>t0 * cols * 4;
  for (let t = t0; t < t1; t++) {
    const ci = t % CI;
    const tap = t / CI;
    const kh = tap / KW;
    const kw = tap % KW;
    for (let oh = 0; oh < OH; oh++) {
      const h = oh * sh + kh - top;
      if (h < 0 || h >= H) {
        memory.fill(o, 0, <usize>(OW * B) << 2);
        o += <usize>(OW * B) << 2;
        continue;
      }
      for (let ow = 0; ow < OW; ow++) {
        const w = ow * sw + kw - left;
        if (w < 0 || w >= W) {
          memory.fill(o, 0, <usize>B << 2);
          o += <usize>B << 2;
          continue;
        }
        let from = x + ((((<usize>h * W + w) * CI) + ci) << 2);
        for (let b = 0; b < B; b++) {
          store<f32>(o, load<f32>(from));
          from += batchStride;
          o += 4;
        }
      }
    }
  }
}
