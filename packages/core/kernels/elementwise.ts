// Element-wise float32 add and multiply-by-a-scalar on the tfjs wasm heap (byte offsets):
// the same IEEE operations as tfjs's Add and Multiply, so the same values. They exist to
// be split over the helper threads (a 2048 x 2048 weight update is two passes over 16 MB).

/** out = x + y. */
export function add(out: usize, x: usize, y: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.add(v128.load(x + o), v128.load(y + o)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(x + o) + load<f32>(y + o));
  }
}

/** out = x * s. */
export function scale(out: usize, x: usize, s: f32, n: i32): void {
  const vs = f32x4.splat(s);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, f32x4.mul(v128.load(x + o), vs));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, load<f32>(x + o) * s);
  }
}
