import { largestStableRate, methodName, smallestStableRate, type DelayMethod } from './delay-stability';

export const DELAYS = [0, 1, 2, 4, 8, 16, 32, 64];
export const AB_RHOS = [0.5, 1, 1.5, 2];

/** Every method the study compares, in table order. */
export const METHODS: DelayMethod[] = [
  { kind: 'momentum' },
  ...AB_RHOS.map((rho): DelayMethod => ({ kind: 'ab', rho })),
  { kind: 'sc' },
  { kind: 'lwp', form: 'velocity' },
  { kind: 'lwp', form: 'delta' },
  { kind: 'sc+lwp', form: 'velocity' },
  { kind: 'sc+lwp', form: 'delta' },
];

export interface StabilityRow {
  method: string;
  /** 1: the 1-D quadratic; N: curvatures spread log-uniformly over `spread` (AB's cosine is then not ±1). */
  dims: number;
  delay: number;
  /** The largest stable lr·h_max. */
  rate: number;
  /** The smallest rate that converges (0 where every small rate does; AB with rho >= 1 can stall below it). */
  lowest: number;
  /** rate / momentum's rate at the same delay and dims. */
  factor: number;
}

/** The largest stable lr·h for every method and delay, on the 1-D and the N-dimensional quadratic. */
export function stabilityTable(o: { momentum: number; dims: number; spread: number; delays?: number[] }): StabilityRow[] {
  const rows: StabilityRow[] = [];
  for (const dims of [1, o.dims]) {
    for (const delay of o.delays ?? DELAYS) {
      const base = largestStableRate({ kind: 'momentum' }, delay, { momentum: o.momentum, dims, spread: o.spread });
      for (const method of METHODS) {
        const options = { momentum: o.momentum, dims, spread: o.spread };
        const rate = method.kind === 'momentum' ? base : largestStableRate(method, delay, options);
        const lowest = method.kind === 'ab' ? smallestStableRate(method, delay, options) : 0;
        rows.push({ method: methodName(method), dims, delay, rate, lowest, factor: rate / base });
      }
    }
  }
  return rows;
}

/** A variant of the N-dimensional quadratic (AB's result depends on it; the linear methods' do not). */
export interface QuadraticCase {
  dims: number;
  spread: number;
  /** AB's cosine per tensor (direction i in tensor i mod tensors); 1: one cosine over all. */
  tensors: number;
}

export interface SensitivityRow extends QuadraticCase {
  method: string;
  delay: number;
  rate: number;
  lowest: number;
  factor: number;
}

/** AB's largest (and smallest) stable lr·h_max at one delay on several quadratics, against momentum's. */
export function abSensitivity(o: { momentum: number; delay: number; cases: QuadraticCase[] }): SensitivityRow[] {
  const base = largestStableRate({ kind: 'momentum' }, o.delay, { momentum: o.momentum });
  return o.cases.flatMap((c) =>
    AB_RHOS.map((rho) => {
      const method: DelayMethod = { kind: 'ab', rho, tensors: c.tensors };
      const options = { momentum: o.momentum, dims: c.dims, spread: c.spread };
      const rate = largestStableRate(method, o.delay, options);
      return { ...c, method: methodName({ kind: 'ab', rho }), delay: o.delay, rate, lowest: smallestStableRate(method, o.delay, options), factor: rate / base };
    }),
  );
}
