// Convolution gradients on float32 buffers of the tfjs wasm heap (byte offsets), NHWC.

/**
 * The filter gradient of a 2-D convolution with few input channels (an image net's first
 * layer: 1 or 3), dilation 1:
 *
 *   dW[kh, kw, ci, co] = sum over (oh, ow, b) of x[b, oh*sh + kh - top, ow*sw + kw - left, ci] * dy[b, oh, ow, co]
 *
 * summed in that order (output position outer, batch inner), mul then add in float32 from
 * zero, taps outside the input skipped. The general route (a convolution with the batch
 * as the contracted channel) transposes both operands and packs dy as a filter on every
 * call, which costs several times the products when there are few input channels. Here
 * dy is read once, row by row, and the KH*KW*CI*CO sums stay in L1 (in dW itself); four
 * output channels at a time.
 */
export function convFilterGrad(dw: usize, x: usize, dy: usize, B: i32, H: i32, W: i32, CI: i32, OH: i32, OW: i32, CO: i32, KH: i32, KW: i32, sh: i32, sw: i32, top: i32, left: i32): void {
  memory.fill(dw, 0, <usize>KH * KW * CI * CO << 2);
  const CO4 = CO & ~3;
  const CO16 = CO & ~15;
  for (let oh = 0; oh < OH; oh++) {
    const h0 = oh * sh - top;
    for (let ow = 0; ow < OW; ow++) {
      const w0 = ow * sw - left;
      for (let b = 0; b < B; b++) {
        const g = dy + ((((<usize>b * OH + oh) * OW + ow) * CO) << 2);
        for (let kh = 0; kh < KH; kh++) {
          const h = h0 + kh;
          if (h < 0 || h >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const w = w0 + kw;
            if (w < 0 || w >= W) continue;
            const xs = x + ((((<usize>b * H + h) * W + w) * CI) << 2);
            const tap = dw + ((((<usize>kh * KW + kw) * CI) * CO) << 2);
            for (let ci = 0; ci < CI; ci++) {
              const xv = load<f32>(xs + (<usize>ci << 2));
              const xv4 = f32x4.splat(xv);
              const acc = tap + ((<usize>ci * CO) << 2);
              let co = 0;
              // Sixteen channels per round: four independent sums in flight.
              for (; co < CO16; co += 16) {
                const at = acc + (<usize>co << 2);
                const gg = g + (<usize>co << 2);
                const p0 = f32x4.mul(xv4, v128.load(gg));
                const p1 = f32x4.mul(xv4, v128.load(gg, 16));
                const p2 = f32x4.mul(xv4, v128.load(gg, 32));
                const p3 = f32x4.mul(xv4, v128.load(gg, 48));
                v128.store(at, f32x4.add(v128.load(at), p0));
                v128.store(at, f32x4.add(v128.load(at, 16), p1), 16);
                v128.store(at, f32x4.add(v128.load(at, 32), p2), 32);
                v128.store(at, f32x4.add(v128.load(at, 48), p3), 48);
              }
              for (; co < CO4; co += 4) {
                const at = acc + (<usize>co << 2);
                v128.store(at, f32x4.add(v128.load(at), f32x4.mul(xv4, v128.load(g + (<usize>co << 2)))));
              }
              for (; co < CO; co++) {
                const at = acc + (<usize>co << 2);
                store<f32>(at, load<f32>(at) + xv * load<f32>(g + (<usize>co << 2)));
              }
            }
          }
        }
      }
    }
  }
}
