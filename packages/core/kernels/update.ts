// Fused optimizer updates on float32 buffers of the tfjs wasm heap (byte offsets).
// Each output is rounded exactly as the unfused float32 ops round it, so the results are
// bit-identical to the step transforms' tf.mul / tf.add / tf.sqrt / tf.div chain, except
// that results below the smallest normal float32 (|x| < 2^-126) are stored as zero.
// WebAssembly has no flush-to-zero mode, and a multiply with a subnormal operand or
// result runs about 24x slower on x86 (measured); a velocity decaying under m > 0.5
// never leaves the subnormals (m * k 2^-149 rounds back to k 2^-149 for small k), so
// weights that stop receiving gradient would slow every later update for ever. Operands
// are not flushed (it would slow every update on normal values): a subnormal gradient
// is a one-off.

const MIN_NORMAL: f32 = 1.17549435e-38;

/** x, or 0 where |x| is subnormal; NaN and infinities pass. */
@inline function flush(x: v128): v128 {
  return v128.andnot(x, f32x4.lt(f32x4.abs(x), f32x4.splat(MIN_NORMAL)));
}

@inline function flush1(x: f32): f32 {
  return Mathf.abs(x) < MIN_NORMAL ? 0 : x;
}

/** out = a * x + b * y (momentum: v' = m v + g). */
export function axpby(out: usize, x: usize, y: usize, a: f32, b: f32, n: i32): void {
  const va = f32x4.splat(a);
  const vb = f32x4.splat(b);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    v128.store(out + o, flush(f32x4.add(f32x4.mul(v128.load(x + o), va), f32x4.mul(v128.load(y + o), vb))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    store<f32>(out + o, flush1(a * load<f32>(x + o) + b * load<f32>(y + o)));
  }
}

/**
 * Adam's moments and direction in one pass:
 * mu' = b1 mu + c1 g, nu' = b2 nu + c2 g^2, dir = (mu' s1) / (sqrt(nu' s2) + eps).
 */
export function adam(muOut: usize, nuOut: usize, dirOut: usize, g: usize, mu: usize, nu: usize, b1: f32, c1: f32, b2: f32, c2: f32, s1: f32, s2: f32, eps: f32, n: i32): void {
  const vb1 = f32x4.splat(b1);
  const vc1 = f32x4.splat(c1);
  const vb2 = f32x4.splat(b2);
  const vc2 = f32x4.splat(c2);
  const vs1 = f32x4.splat(s1);
  const vs2 = f32x4.splat(s2);
  const veps = f32x4.splat(eps);
  const n4 = n & ~3;
  let i = 0;
  for (; i < n4; i += 4) {
    const o = <usize>i << 2;
    const vg = v128.load(g + o);
    const m = flush(f32x4.add(f32x4.mul(v128.load(mu + o), vb1), f32x4.mul(vg, vc1)));
    const v = flush(f32x4.add(f32x4.mul(v128.load(nu + o), vb2), f32x4.mul(f32x4.mul(vg, vg), vc2)));
    v128.store(muOut + o, m);
    v128.store(nuOut + o, v);
    v128.store(dirOut + o, flush(f32x4.div(f32x4.mul(m, vs1), f32x4.add(f32x4.sqrt(f32x4.mul(v, vs2)), veps))));
  }
  for (; i < n; i++) {
    const o = <usize>i << 2;
    const gi = load<f32>(g + o);
    const m: f32 = flush1(load<f32>(mu + o) * b1 + gi * c1);
    const v: f32 = flush1(load<f32>(nu + o) * b2 + (gi * gi) * c2);
    store<f32>(muOut + o, m);
    store<f32>(nuOut + o, v);
    store<f32>(dirOut + o, flush1((m * s1) / (Mathf.sqrt(v * s2) + eps)));
  }
}
