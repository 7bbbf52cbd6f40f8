// Float64 reference of the LoRA equations (docs/techniques.md §1.2) in plain TS arrays.
export type M = number[][];

export function matmul(a: M, b: M): M {
  return a.map((row) => b[0].map((_, j) => row.reduce((s, v, k) => s + v * b[k][j], 0)));
}

export function add(a: M, b: M): M {
  return a.map((row, i) => row.map((v, j) => v + b[i][j]));
}

export function scale(a: M, s: number): M {
  return a.map((row) => row.map((v) => v * s));
}

export function transpose(a: M): M {
  return a[0].map((_, j) => a.map((row) => row[j]));
}

export function addBias(a: M, b: number[]): M {
  return a.map((row) => row.map((v, j) => v + b[j]));
}

/** y = x K + b + s (x A) B, before the activation. */
export function loraDense(x: M, K: M, b: number[], A: M, B: M, s: number): M {
  return add(addBias(matmul(x, K), b), scale(matmul(matmul(x, A), B), s));
}

/**
 * Gradients of L = sum(G ⊙ y) for linear activation:
 * dL/dA = s x^T (G B^T), dL/dB = s (x A)^T G.
 */
export function loraDenseGrads(x: M, A: M, B: M, G: M, s: number): { dA: M; dB: M } {
  return {
    dA: scale(matmul(transpose(x), matmul(G, transpose(B))), s),
    dB: scale(matmul(transpose(matmul(x, A)), G), s),
  };
}

export function maxAbs(a: M, b: M): number {
  return Math.max(...a.flatMap((row, i) => row.map((v, j) => Math.abs(v - b[i][j]))));
}
