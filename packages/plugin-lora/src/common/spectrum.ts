import type * as tf from '@tensorflow/tfjs';
import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { configError } from './errors';

/** Singular values, descending, of a row-major rows x cols matrix (float64 SVD). */
export function singularValues(data: ArrayLike<number>, rows: number, cols: number): number[] {
  if (data.length !== rows * cols) throw configError(`singularValues: ${data.length} values do not make a ${rows}x${cols} matrix.`);
  const m = Matrix.from1DArray(rows, cols, Array.from(data));
  const svd = new SingularValueDecomposition(m, { computeLeftSingularVectors: false, computeRightSingularVectors: false, autoTranspose: true });
  return [...svd.diagonal].sort((a, b) => b - a);
}

/**
 * The smallest k whose top-k singular values explain `fraction` of the squared
 * Frobenius norm: min { k : sum_{i<=k} s_i^2 >= fraction * sum_i s_i^2 } (0 for a zero
 * matrix). With fraction 0.9 this is the paper's rank90 (docs/techniques.md §1.4).
 */
export function explainedRank(sigmas: readonly number[], fraction = 0.9): number {
  if (!(fraction > 0 && fraction <= 1)) throw configError(`explainedRank: fraction must be in (0, 1] (got ${fraction}).`);
  const sq = [...sigmas].sort((a, b) => b - a).map((s) => s * s);
  const total = sq.reduce((a, b) => a + b, 0);
  if (total === 0) return 0;
  // Relative slack so that exactly-on-the-boundary spectra (identity) are not lost to rounding.
  const need = fraction * total * (1 - 1e-12);
  let cum = 0;
  for (let k = 0; k < sq.length; k++) {
    cum += sq[k];
    if (cum >= need) return k + 1;
  }
  return sq.length;
}

export function rank90(sigmas: readonly number[]): number {
  return explainedRank(sigmas, 0.9);
}

export interface Spectrum {
  /** Singular values, descending. */
  singularValues: number[];
  /** explainedRank at the analysis fraction. */
  rank: number;
  /** Frobenius norm. */
  norm: number;
}

/**
 * The spectrum of `t` seen as a rows x cols matrix, or null when it holds NaN or Inf: its
 * singular values are then not defined (the SVD gives NaN, which explainedRank would count
 * as full rank). float32 squares summed in float64 cannot overflow, so a non-finite sum
 * means a non-finite entry.
 */
export function spectrumOf(t: tf.Tensor, rows: number, cols: number, fraction: number): Spectrum | null {
  const data = t.dataSync();
  let sq = 0;
  for (let i = 0; i < data.length; i++) sq += data[i] * data[i];
  if (!Number.isFinite(sq)) return null;
  const singular = singularValues(data, rows, cols);
  return { singularValues: singular, rank: explainedRank(singular, fraction), norm: Math.sqrt(sq) };
}
