import { EigenvalueDecomposition, Matrix } from 'ml-matrix';

/**
 * Stability of momentum methods under gradient delay, in float64 (docs/techniques.md
 * §4.3-§4.5, §5.3-§5.4). The loss is the quadratic L = sum_i h_i w_i² / 2 and the
 * gradient applied at step t was computed on the forward weights of step t - D (the
 * initial weights while t < D). The learning rate is folded into the curvatures:
 * q_i = lr h_i, and `v` below is lr times the PyTorch-form velocity of §0.1, so only
 * q matters. For one curvature (1-D) or any set of curvatures, a linear method is stable
 * for q_max below a threshold; the "largest stable lr·h" is that threshold for q_max.
 */
export type DelayMethod =
  | { kind: 'momentum' }
  /**
   * Adaptive Braking (§4.2): alpha = 1 - rho cos(g, v), one cosine over the whole vector
   * (one tensor), or one per tensor when `tensors` > 1: direction i belongs to tensor
   * i mod tensors, so every tensor spans the whole spread of curvatures.
   */
  | { kind: 'ab'; rho: number; tensors?: number }
  /** Spike Compensation (§5.3) with this delay's a = m^D, b = (1 - m^D)/(1 - m). */
  | { kind: 'sc' }
  /** Linear Weight Prediction (§5.4): the forward runs on w - D v ('velocity') or w + D (w - w_prev) ('delta'). */
  | { kind: 'lwp'; form: 'velocity' | 'delta' }
  | { kind: 'sc+lwp'; form: 'velocity' | 'delta' };

export function methodName(m: DelayMethod): string {
  switch (m.kind) {
    case 'ab':
      return `AB rho=${m.rho}${(m.tensors ?? 1) > 1 ? ` (${m.tensors} tensors)` : ''}`;
    case 'lwp':
      return `LWP (${m.form})`;
    case 'sc+lwp':
      return `SC + LWP (${m.form})`;
    default:
      return m.kind === 'sc' ? 'SC' : 'momentum';
  }
}

/**
 * One run's state: weights, the previous weights (for the weight-delta prediction), the
 * (lr-scaled) velocity, and the forward weights of the last D steps, newest first (a shift
 * register, so one step is the same map at every step: what makes its matrix meaningful).
 */
interface State {
  w: Float64Array;
  wPrev: Float64Array;
  v: Float64Array;
  /** history[k]: the weights the forward of step t - 1 - k ran on (the initial weights before step 0). */
  history: Float64Array[];
}

/** A step of `method` with delay D and momentum m on curvatures q (lr folded in). Mutates `s`. */
export function step(method: DelayMethod, s: State, q: Float64Array, D: number, m: number): void {
  const n = q.length;
  const predicts = method.kind === 'lwp' || method.kind === 'sc+lwp';
  // The forward of this step: the current weights, or their linear prediction D steps ahead.
  const f = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    if (!predicts || D === 0) f[i] = s.w[i];
    else if (method.form === 'velocity') f[i] = s.w[i] - D * s.v[i];
    else f[i] = s.w[i] + D * (s.w[i] - s.wPrev[i]);
  }
  // The gradient applied now was computed on the forward weights of D steps ago.
  const old = D === 0 ? f : s.history[D - 1];
  const g = new Float64Array(n);
  for (let i = 0; i < n; i++) g[i] = q[i] * old[i];
  if (D > 0) s.history = [f, ...s.history.slice(0, D - 1)];
  const alpha = method.kind === 'ab' ? brakingScales(g, s.v, method.rho, method.tensors ?? 1) : undefined;
  const sc = method.kind === 'sc' || method.kind === 'sc+lwp';
  const a = sc ? m ** D : 1;
  const b = sc ? (1 - m ** D) / (1 - m) : 0;
  for (let i = 0; i < n; i++) {
    s.v[i] = m * s.v[i] + (alpha ? alpha[i % alpha.length] : 1) * g[i];
    s.wPrev[i] = s.w[i];
    s.w[i] -= a * s.v[i] + b * g[i];
  }
}

/** AB's alpha = 1 - rho cos(g, v) of each tensor (direction i belongs to tensor i mod tensors); cos = 0 when g or v is 0. */
function brakingScales(g: Float64Array, v: Float64Array, rho: number, tensors: number): Float64Array {
  const gv = new Float64Array(tensors);
  const gg = new Float64Array(tensors);
  const vv = new Float64Array(tensors);
  for (let i = 0; i < g.length; i++) {
    const k = i % tensors;
    gv[k] += g[i] * v[i];
    gg[k] += g[i] * g[i];
    vv[k] += v[i] * v[i];
  }
  // (the product of the squares can underflow, so the norms are multiplied)
  return gv.map((x, k) => 1 - rho * (gg[k] === 0 || vv[k] === 0 ? 0 : x / (Math.sqrt(gg[k]) * Math.sqrt(vv[k]))));
}

/** A run from w0 at rest: the forwards "before step 0" are the initial weights (warm-up). */
export function startState(w0: Float64Array, D: number): State {
  return { w: Float64Array.from(w0), wPrev: Float64Array.from(w0), v: new Float64Array(w0.length), history: Array.from({ length: D }, () => Float64Array.from(w0)) };
}

/**
 * Spectral radius of one step of a linear method (everything but AB) on a single
 * curvature q: the step is linear in its state (w, w_prev, v, the D past forwards), so
 * its matrix is read off column by column.
 */
export function spectralRadius(method: DelayMethod, q: number, D: number, m: number): number {
  if (method.kind === 'ab') throw new Error('spectralRadius: Adaptive Braking is not linear; use simulation');
  const size = 3 + D;
  const pack = (s: State) => [s.w[0], s.wPrev[0], s.v[0], ...s.history.map((f) => f[0])];
  const A = new Matrix(size, size);
  for (let j = 0; j < size; j++) {
    const e = new Array<number>(size).fill(0);
    e[j] = 1;
    const s: State = { w: Float64Array.of(e[0]), wPrev: Float64Array.of(e[1]), v: Float64Array.of(e[2]), history: e.slice(3).map((x) => Float64Array.of(x)) };
    step(method, s, Float64Array.of(q), D, m);
    pack(s).forEach((x, i) => A.set(i, j, x));
  }
  const eig = new EigenvalueDecomposition(A);
  return Math.max(...eig.realEigenvalues.map((re, k) => Math.hypot(re, eig.imaginaryEigenvalues[k])));
}

/**
 * Whether a run on curvatures q converges: within `steps` steps the sharpest direction
 * (q[0], the largest curvature) falls below 1e-3 of its start, and the weights never
 * exceed 1e6 times their start. A bounded oscillation that does not die out (Adaptive
 * Braking can settle into one) does not count: training would not reach the minimum.
 */
export function converges(method: DelayMethod, q: Float64Array, D: number, m: number, steps: number, w0?: Float64Array): boolean {
  const start = w0 ?? new Float64Array(q.length).fill(1);
  const s = startState(start, D);
  const norm = (x: Float64Array) => Math.sqrt(x.reduce((a, b) => a + b * b, 0));
  const n0 = norm(start);
  for (let t = 0; t < steps; t++) {
    step(method, s, q, D, m);
    if (t % 64 === 0) {
      if (!(norm(s.w) < 1e6 * n0)) return false;
      if (Math.abs(s.w[0]) < 1e-3 * Math.abs(start[0]) && Math.abs(s.v[0]) < 1e-3 * Math.abs(start[0])) return true;
    }
  }
  return false;
}

/** Steps to give a run at rate q: enough e-folds of the slowest stable decay near q, plus the delay's warm-up. */
export function horizon(q: number, D: number, m: number): number {
  return Math.min(400_000, Math.ceil(4000 + 200 * D + (30 * (1 - m)) / q));
}

/** Curvature profile of the N-dimensional quadratic: q_max times a log-uniform spread from 1 down to `spread`. */
export function curvatures(qMax: number, n: number, spread: number): Float64Array {
  return Float64Array.from({ length: n }, (_, i) => qMax * spread ** (n === 1 ? 0 : i / (n - 1)));
}

export interface StabilityOptions {
  momentum: number;
  /** Dimensions of the quadratic (1: the 1-D case) and the smallest curvature relative to the largest. */
  dims?: number;
  spread?: number;
  /** Bisection precision on log(q) (default 1e-3 relative). */
  tolerance?: number;
}

/**
 * The largest q_max = lr·h_max at which `method` is stable at delay D: the highest point
 * of a log grid (1e-4 to 10) where it converges, refined by bisection towards the next
 * grid point. Linear methods use the spectral radius (< 1) of the sharpest direction, and
 * their stable rates form an interval from 0. Adaptive Braking, which is not linear, is
 * simulated on the curvature profile (`converges`); its stable rates need not start at 0
 * (with rho >= 1 an aligned gradient is zeroed or reversed, which can stall small steps):
 * `smallestStableRate` reports where they start.
 */
export function largestStableRate(method: DelayMethod, D: number, o: StabilityOptions): number {
  const stable = stabilityTest(method, D, o);
  let i = GRID.length - 1;
  while (i >= 0 && !stable(GRID[i])) i--;
  if (i < 0) return 0;
  if (i === GRID.length - 1) return Infinity;
  let [lo, hi] = [GRID[i], GRID[i + 1]];
  while (hi / lo > 1 + (o.tolerance ?? 1e-3)) {
    const mid = Math.sqrt(lo * hi);
    if (stable(mid)) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** The smallest grid rate at which `method` converges at delay D (0 when none does). */
export function smallestStableRate(method: DelayMethod, D: number, o: StabilityOptions): number {
  const stable = stabilityTest(method, D, o);
  return GRID.find((q) => stable(q)) ?? 0;
}

/** Log grid of rates scanned: 1e-4 to 10, 10 points a decade. */
const GRID = Array.from({ length: 51 }, (_, i) => 10 ** (-4 + i / 10));

function stabilityTest(method: DelayMethod, D: number, o: StabilityOptions): (q: number) => boolean {
  return (q) =>
    method.kind === 'ab'
      ? converges(method, curvatures(q, o.dims ?? 1, o.spread ?? 0.01), D, o.momentum, horizon(q, D, o.momentum))
      : spectralRadius(method, q, D, o.momentum) < 1 - 1e-12;
}
