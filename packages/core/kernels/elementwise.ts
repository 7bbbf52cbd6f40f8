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

/** out[r, c] = x[r, c] + bias[c] for rows r0 .. r1 (a bias added to every row). */
export function addRows(out: usize, x: usize, bias: usize, cols: i32, r0: i32, r1: i32): void {
  const c4 = cols & ~3;
  const rowBytes = <usize>cols << 2;
  let o = out + <usize>r0 * rowBytes;
  let p = x + <usize>r0 * rowBytes;
  for (let r = r0; r < r1; r++) {
    let c = 0;
    for (; c < c4; c += 4) {
      const at = <usize>c << 2;
      v128.store(o + at, f32x4.add(v128.load(p + at), v128.load(bias + at)));
    }
    for (; c < cols; c++) {
      const at = <usize>c << 2;
      store<f32>(o + at, load<f32>(p + at) + load<f32>(bias + at));
    }
    o += rowBytes;
    p += rowBytes;
  }
}

/**
 * Relu's gradient, dy step(x), in one pass: step(x) is 1 where x > 0, x itself where x is
 * NaN (as tfjs-backend-wasm's Step keeps it, sign included), 0 elsewhere, and the product
 * is taken as tfjs takes it, dy times step (so 0 times an infinite dy is NaN, and a
 * negative dy gives -0): the values of tfjs's mul(dy, step(x)).
 */
export function reluGrad(out: usize, dy: usize, x: usize, n: i32): void {
  const one = f32x4.splat(1);
  const zero = f32x4.splat(0);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    const xs = v128.load(x + o);
    const step = v128.bitselect(one, v128.bitselect(xs, zero, f32x4.ne(xs, xs)), f32x4.gt(xs, zero));
    v128.store(out + o, f32x4.mul(v128.load(dy + o), step));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const xv = load<f32>(x + o);
    const step: f32 = xv > 0 ? 1 : isNaN(xv) ? xv : 0;
    store<f32>(out + o, load<f32>(dy + o) * step);
  }
}

/**
 * max(x, 0) as XNNPACK's clamp computes it on wasm, bit for bit (x where its sign bit is
 * clear, +0 where it is set), except that NaN stays NaN whatever its sign bit, as on cpu:
 * XNNPACK turned a NaN with its sign bit set (what x86 makes of 0 * Inf or Inf - Inf) into
 * 0, hiding a diverged value from the loss.
 */
export function relu(out: usize, x: usize, n: i32): void {
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    // Clear the lanes whose sign bit is set, except NaN lanes.
    v128.store(out + o, v128.andnot(v, v128.andnot(i32x4.shr_s(v, 31), f32x4.ne(v, v))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<i32>(out + o, isNaN(v) || reinterpret<i32>(v) >= 0 ? reinterpret<i32>(v) : 0);
  }
}

/**
 * clamp(x, lo, hi) as XNNPACK computes it (pseudo-min/max: lo for -0 when lo is +0), except
 * that NaN stays NaN (clipByValue, relu6 and fused activations on wasm): XNNPACK returned lo.
 */
export function clamp(out: usize, x: usize, lo: f32, hi: f32, n: i32): void {
  const vlo = f32x4.splat(lo);
  const vhi = f32x4.splat(hi);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    const v = v128.load(x + o);
    v128.store(out + o, v128.bitselect(v, f32x4.pmin(vhi, f32x4.pmax(vlo, v)), f32x4.ne(v, v)));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const v = load<f32>(x + o);
    store<f32>(out + o, isNaN(v) ? v : v < lo ? lo : v > hi ? hi : v);
  }
}

/** 1 when some element is -Infinity (XNNPACK's pooling writes it for a window holding NaN), else 0. */
export function hasNegativeInfinity(x: usize, n: i32): i32 {
  const ninf = f32x4.splat(-Infinity);
  const n4 = n & ~3;
  let i = 0;
  let seen = i32x4.splat(0);
  for (; i < n4; i += 4) seen = v128.or(seen, f32x4.eq(v128.load(x + (<usize>i << 2)), ninf));
  if (v128.any_true(seen)) return 1;
  for (; i < n; i++) if (load<f32>(x + (<usize>i << 2)) == -Infinity) return 1;
  return 0;
}
