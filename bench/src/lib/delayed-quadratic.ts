/**
 * The 1-D delayed quadratic of docs/techniques.md §4.5 (item 6), L = h w² / 2, in
 * float64: SGDM (PyTorch form, v = m v + alpha g, w -= lr v) where the gradient applied at
 * step t was computed at w_{t-D}, with Adaptive Braking's scale alpha = 1 - rho cos(g, v)
 * (in 1-D, cos = ±1, and 0 while v = 0). Only the product lr·h matters.
 */
export function delayedQuadratic(lrTimesH: number, delay: number, momentum: number, rho: number, steps: number): Float64Array {
  const w = new Float64Array(steps + 1);
  w[0] = 1;
  let v = 0;
  for (let t = 0; t < steps; t++) {
    const g = lrTimesH * w[Math.max(0, t - delay)];
    const cos = g === 0 || v === 0 ? 0 : Math.sign(g * v);
    v = momentum * v + (1 - rho * cos) * g;
    w[t + 1] = w[t] - v;
    if (!Number.isFinite(w[t + 1]) || Math.abs(w[t + 1]) > 1e8) return w.subarray(0, t + 2);
  }
  return w;
}

/** Converged: |w| over the last 1,000 of `steps` steps below 1e-3 of its start. */
function converges(lrTimesH: number, delay: number, momentum: number, rho: number, steps: number): boolean {
  const w = delayedQuadratic(lrTimesH, delay, momentum, rho, steps);
  if (w.length < steps + 1) return false;
  return w.subarray(steps - 1000).every((x) => Math.abs(x) < 1e-3);
}

/**
 * The largest lr·h on a log grid (48 points, 1e-4 to 5) for which the delayed quadratic
 * converges within `steps` steps: how far the learning rate can go at this delay before
 * the sharpest direction of a loss with curvature h diverges.
 */
export function largestStableLrTimesH(delay: number, momentum: number, rho: number, steps = 20_000): number {
  let best = NaN;
  for (let i = 0; i < 48; i++) {
    const lrTimesH = 10 ** (-4 + (i * Math.log10(5e4)) / 47);
    if (converges(lrTimesH, delay, momentum, rho, steps)) best = lrTimesH;
  }
  return best;
}
