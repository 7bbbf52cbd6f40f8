// Float64 oracle: the optimizers as PyTorch documents their algorithms (torch.optim.SGD,
// Adam, AdamW, clip_grad_norm_) and as tfjs-core 4.22 updates them (RMSProp, Adagrad,
// Adadelta, Adamax), written on plain number arrays with no tf. This is an independent
// formulation: one monolithic loop per optimizer, not composed transforms.

import type { Schedule } from '../../src/transforms';

/** Flattened parameters by name. */
export type Params = Record<string, number[]>;

/**
 * A small problem with parameters of different shapes and a non-quadratic loss
 * L = sum h (w - c)^2 / 2 + q (w - c)^4 / 4, so gradients change non-linearly along
 * the trajectory (gradient: h d + q d^3 with d = w - c).
 */
export interface Problem {
  shapes: Record<string, number[]>;
  h: Params;
  c: Params;
  q: number;
  w0: Params;
}

export const problem: Problem = {
  shapes: { w1: [3], w2: [2, 2], b: [] },
  h: { w1: [0.5, 1.5, 3], w2: [1, 2, 0.8, 2.5], b: [1.2] },
  c: { w1: [0.3, -1.2, 2], w2: [1, 0.5, -0.7, 0.1], b: [-0.4] },
  q: 0.1,
  w0: { w1: [2.1, 1.3, -0.6], w2: [-1.5, 2.2, 1.1, -2], b: [1.6] },
};

export function gradient(p: Problem, w: Params): Params {
  return mapParams(w, (x, k, i) => {
    const d = x - p.c[k][i];
    return p.h[k][i] * d + p.q * d * d * d;
  });
}

/**
 * One optimizer step on w (mutated) given the gradient. A parameter missing from `g` (no
 * gradient this step) is neither updated nor decayed and keeps its state, as torch.optim
 * and tf.train skip a None/null gradient; step counts (bias corrections, the undamped first
 * momentum step) are the optimizer's, one per step, as tf.train's global beta powers.
 */
export type RefOptimizer = (w: Params, g: Params) => void;

export function refSgd(o: {
  lr: Schedule;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}): RefOptimizer {
  const m = o.momentum ?? 0;
  const d = o.dampening ?? 0;
  const wd = o.weightDecay ?? 0;
  let t = 0;
  let buf: Params | undefined;
  return (w, grad) => {
    const first = t === 0;
    const lr = o.lr(t++);
    let g = mapParams(grad, (x, k, i) => x + wd * w[k][i]);
    if (m !== 0) {
      const prev = buf ?? zerosLike(w);
      const fresh = mapParams(g, (x, k, i) => (first ? x : m * prev[k][i] + (1 - d) * x));
      buf = { ...prev, ...fresh };
      g = o.nesterov ? mapParams(g, (x, k, i) => x + m * fresh[k][i]) : fresh;
    }
    eachParam(g, (x, k, i) => (w[k][i] -= lr * x));
  };
}

export function refAdam(o: {
  lr: Schedule;
  b1: number;
  b2: number;
  eps: number;
  weightDecay?: number;
  decoupled?: boolean;
}): RefOptimizer {
  const wd = o.weightDecay ?? 0;
  let t = 0;
  let m: Params | undefined;
  let v: Params | undefined;
  return (w, grad) => {
    const lr = o.lr(t);
    t += 1;
    if (o.decoupled) eachParam(grad, (_, k, i) => (w[k][i] *= 1 - lr * wd));
    const g = o.decoupled ? grad : mapParams(grad, (x, k, i) => x + wd * w[k][i]);
    const m0 = m ?? zerosLike(w);
    const v0 = v ?? zerosLike(w);
    const mm = mapParams(g, (x, k, i) => o.b1 * m0[k][i] + (1 - o.b1) * x);
    const vv = mapParams(g, (x, k, i) => o.b2 * v0[k][i] + (1 - o.b2) * x * x);
    m = { ...m0, ...mm };
    v = { ...v0, ...vv };
    const bc1 = 1 - o.b1 ** t;
    const bc2 = 1 - o.b2 ** t;
    eachParam(g, (_, k, i) => (w[k][i] -= (lr / bc1) * mm[k][i] / (Math.sqrt(vv[k][i]) / Math.sqrt(bc2) + o.eps)));
  };
}

/** tf.train.rmsprop (not centered): ms = d ms + (1-d) g^2; mom = m mom + lr g / sqrt(ms + eps); w -= mom. */
export function refRmsprop(o: { lr: number; decay: number; momentum: number; eps: number }): RefOptimizer {
  let ms: Params | undefined;
  let mom: Params | undefined;
  return (w, g) => {
    const ms0 = ms ?? zerosLike(w);
    const mom0 = mom ?? zerosLike(w);
    const msNew = mapParams(g, (x, k, i) => o.decay * ms0[k][i] + (1 - o.decay) * x * x);
    const momNew = mapParams(g, (x, k, i) => o.momentum * mom0[k][i] + (o.lr * x) / Math.sqrt(msNew[k][i] + o.eps));
    ms = { ...ms0, ...msNew };
    mom = { ...mom0, ...momNew };
    eachParam(momNew, (x, k, i) => (w[k][i] -= x));
  };
}

/** tf.train.adagrad: acc starts at `initial`; acc += g^2; w -= lr g / sqrt(acc + eps). */
export function refAdagrad(o: { lr: number; initial: number; eps: number }): RefOptimizer {
  let acc: Params | undefined;
  return (w, g) => {
    const acc0 = acc ?? mapParams(w, () => o.initial);
    const accNew = mapParams(g, (x, k, i) => acc0[k][i] + x * x);
    acc = { ...acc0, ...accNew };
    eachParam(g, (x, k, i) => (w[k][i] -= (o.lr * x) / Math.sqrt(accNew[k][i] + o.eps)));
  };
}

/**
 * tf.train.adadelta as tfjs-core 4.22 orders it: the step uses the squared-gradient mean
 * from before this gradient. upd = sqrt(au + eps) / sqrt(ag + eps) g; ag = r ag + (1-r) g^2;
 * au = r au + (1-r) upd^2; w -= lr upd.
 */
export function refAdadelta(o: { lr: number; rho: number; eps: number }): RefOptimizer {
  let ag: Params | undefined;
  let au: Params | undefined;
  return (w, g) => {
    const ag0 = ag ?? zerosLike(w);
    const au0 = au ?? zerosLike(w);
    const upd = mapParams(g, (x, k, i) => (Math.sqrt(au0[k][i] + o.eps) / Math.sqrt(ag0[k][i] + o.eps)) * x);
    ag = { ...ag0, ...mapParams(g, (x, k, i) => o.rho * ag0[k][i] + (1 - o.rho) * x * x) };
    au = { ...au0, ...mapParams(upd, (x, k, i) => o.rho * au0[k][i] + (1 - o.rho) * x * x) };
    eachParam(upd, (x, k, i) => (w[k][i] -= o.lr * x));
  };
}

/** tf.train.adamax: m = b1 m + (1-b1) g; u = max(b2 u, |g|); w -= lr / (1 - b1^t) m / (u + eps). */
export function refAdamax(o: { lr: number; b1: number; b2: number; eps: number }): RefOptimizer {
  let t = 0;
  let m: Params | undefined;
  let u: Params | undefined;
  return (w, g) => {
    t += 1;
    const m0 = m ?? zerosLike(w);
    const u0 = u ?? zerosLike(w);
    const mNew = mapParams(g, (x, k, i) => o.b1 * m0[k][i] + (1 - o.b1) * x);
    const uNew = mapParams(g, (x, k, i) => Math.max(o.b2 * u0[k][i], Math.abs(x)));
    m = { ...m0, ...mNew };
    u = { ...u0, ...uNew };
    const step = o.lr / (1 - o.b1 ** t);
    eachParam(mNew, (x, k, i) => (w[k][i] -= (step * x) / (uNew[k][i] + o.eps)));
  };
}

/** torch.nn.utils.clip_grad_norm_ before `inner` (factor min(1, max / norm)). */
export function refClipped(maxNorm: number, inner: RefOptimizer, onClip?: (clipped: boolean) => void): RefOptimizer {
  return (w, grad) => {
    let sq = 0;
    eachParam(grad, (x) => (sq += x * x));
    const norm = Math.sqrt(sq);
    onClip?.(norm > maxNorm);
    const factor = norm > maxNorm ? maxNorm / norm : 1;
    inner(w, mapParams(grad, (x) => x * factor));
  };
}

/** Which parameters get no gradient at which step (0 first), e.g. { 3: ['w2'] }. */
export type Withheld = Record<number, readonly string[]>;

/** Parameters after each of `steps` steps from `p.w0`; `withheld` leaves gradients out. */
export function referenceTrajectory(p: Problem, step: RefOptimizer, steps: number, withheld: Withheld = {}): Params[] {
  const w = mapParams(p.w0, (x) => x);
  const out: Params[] = [];
  for (let s = 0; s < steps; s++) {
    const g = gradient(p, w);
    for (const k of withheld[s] ?? []) delete g[k];
    step(w, g);
    out.push(mapParams(w, (x) => x));
  }
  return out;
}

export function mapParams(ps: Params, f: (x: number, key: string, i: number) => number): Params {
  const out: Params = {};
  for (const k of Object.keys(ps)) out[k] = ps[k].map((x, i) => f(x, k, i));
  return out;
}

function eachParam(ps: Params, f: (x: number, key: string, i: number) => void): void {
  for (const k of Object.keys(ps)) ps[k].forEach((x, i) => f(x, k, i));
}

function zerosLike(ps: Params): Params {
  return mapParams(ps, () => 0);
}
