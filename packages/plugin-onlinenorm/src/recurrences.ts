import * as tf from '@tensorflow/tfjs';
import { affineScan, geometricScan } from './scan';

/**
 * The per-channel recurrences of one batch, on `[N, C]` per-sample summaries, in sample
 * order. Two equivalent evaluations:
 * - 'host': a plain float64 loop over the samples, after reading the summaries back.
 *   On backends whose tensors live in host memory (cpu, wasm) a read is a copy, and the
 *   loop replaces some fifty small kernels, each of which costs tens of microseconds.
 * - 'device': vectorised scans (scan.ts), no read-back; for GPU backends, where a
 *   read-back stalls the pipeline.
 */
export type RecurrenceMode = 'auto' | 'host' | 'device';

export function resolveRecurrenceMode(mode: RecurrenceMode = 'auto'): 'host' | 'device' {
  if (mode !== 'auto') return mode;
  const backend = tf.getBackend();
  return backend === 'cpu' || backend === 'wasm' ? 'host' : 'device';
}

/** What sample i of the batch is normalised with, and M, V after the batch. */
export interface ForwardStatistics {
  meanBefore: tf.Tensor2D;
  /** sqrt(V_{i-1} + eps) */
  scale: tf.Tensor2D;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
  /**
   * 'host' only: whether every value of `mean` and `variance` is finite, checked on the
   * float32 arrays they were uploaded from (their exact values), so checking them needs
   * no read-back. Undefined on the device.
   */
  finite?: boolean;
}

/**
 * docs/techniques.md §6.2 with `mu_i`, `s2_i` the spatial mean/variance of sample i
 * (`spread` = s2, null for dense features):
 *   V_i = a V_{i-1} + (1-a) s2_i + a(1-a) (mu_i - M_{i-1})^2
 *   M_i = a M_{i-1} + (1-a) mu_i
 */
export function forwardStatistics(
  mode: 'host' | 'device',
  mu: tf.Tensor2D,
  spread: tf.Tensor2D | null,
  start: { mean: tf.Tensor; variance: tf.Tensor },
  alpha: number,
  epsilon: number,
): ForwardStatistics {
  const [n, c] = mu.shape;
  if (mode === 'host') {
    const m = Float64Array.from(start.mean.dataSync());
    const v = Float64Array.from(start.variance.dataSync());
    const muData = mu.dataSync();
    const s2 = spread?.dataSync();
    const meanBefore = new Float32Array(n * c);
    const scale = new Float32Array(n * c);
    for (let i = 0, k = 0; i < n; i++) {
      for (let ch = 0; ch < c; ch++, k++) {
        const dev = muData[k] - m[ch];
        meanBefore[k] = m[ch];
        scale[k] = Math.sqrt(v[ch] + epsilon);
        v[ch] = alpha * v[ch] + (1 - alpha) * (s2 ? s2[k] : 0) + alpha * (1 - alpha) * dev * dev;
        m[ch] += (1 - alpha) * dev;
      }
    }
    const [mean, variance] = [Float32Array.from(m), Float32Array.from(v)];
    return {
      meanBefore: tf.tensor2d(meanBefore, [n, c]),
      scale: tf.tensor2d(scale, [n, c]),
      mean: tf.tensor1d(mean),
      variance: tf.tensor1d(variance),
      finite: allFinite(mean) && allFinite(variance),
    };
  }
  const means = geometricScan(alpha, start.mean as tf.Tensor1D, tf.mul(mu, 1 - alpha));
  const meanBefore = means.slice([0, 0], [n, c]);
  let inputs = tf.mul<tf.Tensor2D>(tf.square(tf.sub(mu, meanBefore)), alpha * (1 - alpha));
  if (spread) inputs = tf.add<tf.Tensor2D>(inputs, tf.mul(spread, 1 - alpha));
  const variances = geometricScan(alpha, start.variance as tf.Tensor1D, inputs);
  return {
    meanBefore,
    scale: tf.sqrt(tf.add(variances.slice([0, 0], [n, c]), epsilon)) as tf.Tensor2D,
    mean: means.slice([n, 0], [1, c]).reshape([c]),
    variance: variances.slice([n, 0], [1, c]).reshape([c]),
  };
}

/** Per-sample spatial means of the backward's inputs, `[N, C]` each. */
export interface BackwardSummaries {
  /** <y_i, y_i> */
  yy: tf.Tensor2D;
  /** <g_i, y_i> */
  gy: tf.Tensor2D;
  /** mean(g_i) */
  g: tf.Tensor2D;
  /** mean(y_i) */
  y: tf.Tensor2D;
  /** sqrt(V_{i-1} + eps) from the forward */
  scale: tf.Tensor2D;
}

/** `(1-b) v_{i-1}` and `(1-b) u_{i-1}` for each sample (what gets subtracted), and u, v after the batch. */
export interface BackwardStatistics {
  leakV: tf.Tensor2D;
  leakU: tf.Tensor2D;
  u: tf.Tensor1D;
  v: tf.Tensor1D;
  /** 'host' only: whether every value of `u` and `v` is finite (as ForwardStatistics.finite). */
  finite?: boolean;
}

/**
 * docs/techniques.md §6.3's accumulators in closed form, with
 * `h_i = (g_i - (1-b) v_{i-1} y_i) / scale_i`:
 *   v_i = v_{i-1} (1 - (1-b) <y_i,y_i>) + <g_i,y_i>
 *   u_i = b u_{i-1} + mean(h_i)
 */
export function backwardStatistics(mode: 'host' | 'device', s: BackwardSummaries, start: { u: tf.Tensor; v: tf.Tensor }, alphaB: number): BackwardStatistics {
  const [n, c] = s.yy.shape;
  const leak = 1 - alphaB;
  if (mode === 'host') {
    const u = Float64Array.from(start.u.dataSync());
    const v = Float64Array.from(start.v.dataSync());
    const [yy, gy, g, y, scale] = [s.yy, s.gy, s.g, s.y, s.scale].map((t) => t.dataSync());
    const leakV = new Float32Array(n * c);
    const leakU = new Float32Array(n * c);
    for (let i = 0, k = 0; i < n; i++) {
      for (let ch = 0; ch < c; ch++, k++) {
        leakV[k] = leak * v[ch];
        leakU[k] = leak * u[ch];
        const meanH = (g[k] - leakV[k] * y[k]) / scale[k];
        v[ch] = v[ch] * (1 - leak * yy[k]) + gy[k];
        u[ch] = alphaB * u[ch] + meanH;
      }
    }
    const [u32, v32] = [Float32Array.from(u), Float32Array.from(v)];
    return { leakV: tf.tensor2d(leakV, [n, c]), leakU: tf.tensor2d(leakU, [n, c]), u: tf.tensor1d(u32), v: tf.tensor1d(v32), finite: allFinite(u32) && allFinite(v32) };
  }
  const vs = affineScan(tf.sub(1, tf.mul(s.yy, leak)), start.v as tf.Tensor1D, s.gy);
  const leakV = tf.mul(vs.slice([0, 0], [n, c]), leak) as tf.Tensor2D;
  const meanH = tf.div(tf.sub(s.g, tf.mul(leakV, s.y)), s.scale) as tf.Tensor2D;
  const us = geometricScan(alphaB, start.u as tf.Tensor1D, meanH);
  return {
    leakV,
    leakU: tf.mul(us.slice([0, 0], [n, c]), leak) as tf.Tensor2D,
    u: us.slice([n, 0], [1, c]).reshape([c]),
    v: vs.slice([n, 0], [1, c]).reshape([c]),
  };
}

/** Whether no value is NaN or +-Inf (float64 values that overflow float32 are Inf by now). */
function allFinite(values: Float32Array): boolean {
  for (let i = 0; i < values.length; i++) if (!Number.isFinite(values[i])) return false;
  return true;
}
