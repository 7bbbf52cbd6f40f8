import { seededRandom } from '@tapfit/core/testing';
// Float64 oracle: SGDM with Adaptive Braking and a gradient delay, written from
// docs/techniques.md §0.1, §4.2 and §4.3 on plain number arrays, with no tf. One monolithic
// step function (not composed transforms), so it checks the transform independently.

/** Flattened parameters by name. */
export type Params = Record<string, number[]>;

export interface RefBrakingOptions {
  lr: number;
  momentum: number;
  /** 0 gives plain SGDM. */
  rho: number;
  granularity?: 'tensor' | 'global';
  weightDecay?: number;
  applyToWeightDecay?: boolean;
}

export interface RefOptimizer {
  /** One update of `w` (mutated) with gradient `grad` (without weight decay). */
  step(w: Params, grad: Params): void;
  /** alpha of the last step, per parameter. */
  scales: Record<string, number>;
  velocity: Params;
}

export function refSgdmBraking(o: RefBrakingOptions): RefOptimizer {
  const wd = o.weightDecay ?? 0;
  const folded = o.applyToWeightDecay ?? true;
  const self: RefOptimizer = {
    scales: {},
    velocity: {},
    step(w, grad) {
      const keys = Object.keys(grad);
      const g: Params = {};
      for (const k of keys) g[k] = grad[k].map((x, i) => x + (folded ? wd * w[k][i] : 0));
      const v = (k: string) => self.velocity[k] ?? g[k].map(() => 0);
      const cos = (dot: number, gg: number, vv: number) => (gg === 0 || vv === 0 ? 0 : dot / Math.sqrt(gg * vv));
      const moments = (k: string) => {
        let dot = 0, gg = 0, vv = 0;
        g[k].forEach((x, i) => ((dot += x * v(k)[i]), (gg += x * x), (vv += v(k)[i] * v(k)[i])));
        return [dot, gg, vv];
      };
      if ((o.granularity ?? 'tensor') === 'tensor') {
        for (const k of keys) self.scales[k] = 1 - o.rho * cos(...(moments(k) as [number, number, number]));
      } else {
        const total = keys.map(moments).reduce((a, b) => a.map((x, i) => x + b[i]), [0, 0, 0]);
        const alpha = 1 - o.rho * cos(total[0], total[1], total[2]);
        for (const k of keys) self.scales[k] = alpha;
      }
      for (const k of keys) {
        const prev = v(k);
        self.velocity[k] = g[k].map((x, i) => o.momentum * prev[i] + self.scales[k] * x + (folded ? 0 : wd * w[k][i]));
        w[k] = w[k].map((x, i) => x - o.lr * self.velocity[k][i]);
      }
    },
  };
  return self;
}

/**
 * The 1-D delayed quadratic L = h w^2 / 2 (docs/techniques.md §4.5 item 6) under SGDM+AB with
 * delay D and the warm-up of §4.3: batch b pushes h w_b; nothing is applied until D + 1
 * gradients were pushed. Returns w after every batch.
 */
export function refDelayedQuadratic(o: { h: number; w0: number; delay: number; batches: number } & RefBrakingOptions): number[] {
  const opt = refSgdmBraking(o);
  const queue: number[] = [];
  const w: Params = { w: [o.w0] };
  const out: number[] = [];
  for (let b = 0; b < o.batches; b++) {
    queue.push(o.h * w.w[0]);
    if (queue.length > o.delay) opt.step(w, { w: [queue.shift()!] });
    out.push(w.w[0]);
  }
  return out;
}

/** Largest |x| over xs[from, to). */
export function amplitude(xs: readonly number[], from: number, to: number): number {
  return Math.max(...xs.slice(from, to).map(Math.abs));
}

/**
 * A small non-quadratic problem with tensors of several shapes:
 * L = sum h (w - c)^2 / 2 + q (w - c)^4 / 4, gradient h d + q d^3 with d = w - c.
 */
export const problem = {
  shapes: { w1: [3], w2: [2, 2], b: [] } as Record<string, number[]>,
  h: { w1: [0.5, 1.5, 3], w2: [1, 2, 0.8, 2.5], b: [1.2] } as Params,
  c: { w1: [0.3, -1.2, 2], w2: [1, 0.5, -0.7, 0.1], b: [-0.4] } as Params,
  q: 0.1,
  w0: { w1: [2.1, 1.3, -0.6], w2: [-1.5, 2.2, 1.1, -2], b: [1.6] } as Params,
};

export function problemGradient(w: Params): Params {
  const out: Params = {};
  for (const k of Object.keys(w)) {
    out[k] = w[k].map((x, i) => {
      const d = x - problem.c[k][i];
      return problem.h[k][i] * d + problem.q * d * d * d;
    });
  }
  return out;
}

export function copyParams(p: Params): Params {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, [...v]]));
}

/** Seeded uniform numbers in [-1, 1), for random vectors in tests (core's testing kit). */
export function seededUniform(seed: number): () => number {
  const next = seededRandom(seed);
  return () => next() * 2 - 1;
}
