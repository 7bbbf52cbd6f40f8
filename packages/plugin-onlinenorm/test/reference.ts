/**
 * Float64 oracle: docs/techniques.md §6.2 (forward), §6.3 (backward control process) and
 * §6.4 (affine, error compensation) as plain number loops, one sample at a time, in the
 * form the reference's numpy loops use (not the closed forms the implementation scans).
 * Samples are `[S][C]` (S spatial positions; S = 1 for dense features).
 */

export type Sample = number[][];

export interface RefState {
  M: number[];
  V: number[];
  u: number[];
  v: number[];
}

export function refState(channels: number): RefState {
  return { M: Array(channels).fill(0), V: Array(channels).fill(1), u: Array(channels).fill(0), v: Array(channels).fill(0) };
}

const mean = (xs: number[]) => xs.reduce((s, x) => s + x, 0) / xs.length;

/** One training forward over `samples` in order; updates st.M, st.V. Returns y and the per-sample scale. */
export function refForward(samples: Sample[], st: RefState, alpha: number, eps: number): { y: Sample[]; scale: number[][] } {
  const y: Sample[] = [];
  const scale: number[][] = [];
  for (const x of samples) {
    const S = x.length;
    const C = x[0].length;
    const yt: Sample = x.map(() => Array(C).fill(0));
    const scaleT = Array(C).fill(0);
    for (let c = 0; c < C; c++) {
      const col = x.map((row) => row[c]);
      const mu = mean(col);
      const sigma2 = mean(col.map((v) => (v - mu) ** 2));
      scaleT[c] = Math.sqrt(st.V[c] + eps);
      for (let s = 0; s < S; s++) yt[s][c] = (x[s][c] - st.M[c]) / scaleT[c];
      st.V[c] = alpha * st.V[c] + (1 - alpha) * sigma2 + alpha * (1 - alpha) * (mu - st.M[c]) ** 2;
      st.M[c] = st.M[c] + (1 - alpha) * (mu - st.M[c]);
    }
    y.push(yt);
    scale.push(scaleT);
  }
  return { y, scale };
}

/**
 * One backward over the samples of a forward, in the same order; updates st.u, st.v.
 * Returns dL/dx and, for the accumulator identities, gt (g with its y component removed).
 */
export function refBackward(grads: Sample[], y: Sample[], scale: number[][], st: RefState, alphaB: number): { dx: Sample[]; gt: Sample[] } {
  const dx: Sample[] = [];
  const gtAll: Sample[] = [];
  for (let t = 0; t < grads.length; t++) {
    const g = grads[t];
    const S = g.length;
    const C = g[0].length;
    const dxt: Sample = g.map(() => Array(C).fill(0));
    const gtt: Sample = g.map(() => Array(C).fill(0));
    for (let c = 0; c < C; c++) {
      const gt = g.map((row, s) => row[c] - (1 - alphaB) * st.v[c] * y[t][s][c]);
      st.v[c] = st.v[c] + mean(gt.map((v, s) => v * y[t][s][c]));
      const h = gt.map((v) => v / scale[t][c]);
      const d = h.map((v) => v - (1 - alphaB) * st.u[c]);
      st.u[c] = st.u[c] + mean(d);
      for (let s = 0; s < S; s++) {
        dxt[s][c] = d[s];
        gtt[s][c] = gt[s];
      }
    }
    dx.push(dxt);
    gtAll.push(gtt);
  }
  return { dx, gt: gtAll };
}

export type RefEcm = { kind: 'none' } | { kind: 'ac'; clamp: number } | { kind: 'ls'; epsLs: number };

/** §6.4 forward for one sample: z = gamma*y + beta, then ECM. */
export function refAffineEcmForward(y: Sample, gamma: number[], beta: number[], ecm: RefEcm): { z: Sample; out: Sample; lsScale: number } {
  const z = y.map((row) => row.map((v, c) => gamma[c] * v + beta[c]));
  if (ecm.kind === 'ac') return { z, out: z.map((row) => row.map((v) => Math.min(ecm.clamp, Math.max(-ecm.clamp, v)))), lsScale: 1 };
  if (ecm.kind === 'ls') {
    const lsScale = Math.sqrt(mean(z.flat().map((v) => v * v)) + ecm.epsLs);
    return { z, out: z.map((row) => row.map((v) => v / lsScale)), lsScale };
  }
  return { z, out: z, lsScale: 1 };
}

/** §6.4 backward for one sample: dL/dy, and this sample's contribution to dgamma, dbeta. */
export function refAffineEcmBackward(
  dout: Sample,
  y: Sample,
  fwd: { z: Sample; out: Sample; lsScale: number },
  gamma: number[],
  ecm: RefEcm,
): { dy: Sample; dgamma: number[]; dbeta: number[] } {
  let dz: Sample;
  if (ecm.kind === 'ac') dz = dout.map((row, s) => row.map((v, c) => (Math.abs(fwd.z[s][c]) < ecm.clamp ? v : 0)));
  else if (ecm.kind === 'ls') {
    const proj = mean(dout.flat().map((v, i) => v * fwd.out.flat()[i]));
    dz = dout.map((row, s) => row.map((v, c) => (v - proj * fwd.out[s][c]) / fwd.lsScale));
  } else dz = dout;
  const C = gamma.length;
  const dgamma = Array(C).fill(0);
  const dbeta = Array(C).fill(0);
  dz.forEach((row, s) =>
    row.forEach((v, c) => {
      dgamma[c] += v * y[s][c];
      dbeta[c] += v;
    }),
  );
  return { dy: dz.map((row) => row.map((v, c) => v * gamma[c])), dgamma, dbeta };
}
