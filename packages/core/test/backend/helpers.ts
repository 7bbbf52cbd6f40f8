import * as tf from '@tensorflow/tfjs';
import { installWasmShim, probeWebgpuAdapter, selectBackend } from '../../src/backend';

/** Deterministic N(0,1) samples (mulberry32 + Box-Muller), identical on every backend. */
export function normals(n: number, seed: number): Float32Array {
  let a = seed >>> 0;
  const uniform = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.sqrt(-2 * Math.log(1 - uniform())) * Math.cos(2 * Math.PI * uniform());
  return out;
}

/** A tensor input given as plain data, so it can be rebuilt on each backend. */
export interface Input {
  shape: number[];
  values: Float32Array | Int32Array;
  dtype?: 'float32' | 'int32';
  /** Differentiate with respect to this input (default: float32 inputs). */
  differentiate?: boolean;
}

export function randn(shape: number[], seed: number, scale = 1): Input {
  const v = normals(shape.reduce((a, b) => a * b, 1), seed);
  if (scale !== 1) for (let i = 0; i < v.length; i++) v[i] *= scale;
  return { shape, values: v };
}

export function ints(shape: number[], values: number[]): Input {
  return { shape, values: Int32Array.from(values), dtype: 'int32', differentiate: false };
}

export interface GradCase {
  inputs: Input[];
  /** Output tensor y; the tested loss is L = sum(w * y) with a fixed random cotangent w. */
  forward: (...xs: tf.Tensor[]) => tf.Tensor;
}

export interface GradResult {
  /** dL/dx for each differentiated input (plain arrays). */
  grads: Float32Array[];
  /** Per differentiated input: <dL/dx, v> and its central finite difference along v. */
  directional: { analytic: number; numeric: number }[];
}

/**
 * Gradients of L = sum(w * y) on the current backend, plus a central finite
 * difference of L along a random direction v per input. The difference is
 * accumulated per element in float64 (sum_i w_i (y+_i - y-_i) / 2 eps), which
 * keeps float32 round-off far below the tolerance the tests use.
 */
export function gradientsWithFiniteDifferences(c: GradCase, eps: number): GradResult {
  return tf.tidy(() => {
    const xs = c.inputs.map((i) => tf.tensor(i.values, i.shape, i.dtype ?? 'float32'));
    const wrt = c.inputs.map((i, k) => ((i.differentiate ?? (i.dtype ?? 'float32') === 'float32') ? k : -1)).filter((k) => k >= 0);
    const y0 = c.forward(...xs);
    const w = normals(y0.size, 99);
    const wT = tf.tensor(w, y0.shape);
    const loss = (...vars: tf.Tensor[]) => {
      const all = xs.slice();
      wrt.forEach((k, j) => (all[k] = vars[j]));
      return tf.sum(tf.mul(c.forward(...all), wT));
    };
    const grads = tf.grads(loss)(wrt.map((k) => xs[k])).map((g) => g.dataSync() as Float32Array);
    const directional = wrt.map((k, j) => {
      const v = normals(xs[k].size, 1000 + k);
      const shifted = (s: number) => {
        const all = xs.slice();
        all[k] = tf.add(xs[k], tf.mul(tf.tensor(v, xs[k].shape), s));
        return c.forward(...all).dataSync();
      };
      const plus = shifted(eps);
      const minus = shifted(-eps);
      let numeric = 0;
      for (let i = 0; i < w.length; i++) numeric += (w[i] * (plus[i] - minus[i])) / (2 * eps);
      let analytic = 0;
      for (let i = 0; i < v.length; i++) analytic += grads[j][i] * v[i];
      return { analytic, numeric };
    });
    return { grads, directional };
  }) as unknown as GradResult;
}

/** max |a - b| / max |b|: the error of `a` relative to the reference `b`'s scale. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return diff / Math.max(scale, 1e-30);
}

export function directionalError(d: { analytic: number; numeric: number }): number {
  return Math.abs(d.analytic - d.numeric) / Math.max(Math.abs(d.analytic), Math.abs(d.numeric), 1e-6);
}

/** Run `f` on a backend, restoring the previous one afterwards. */
export async function on<T>(backend: string, f: () => T): Promise<T> {
  const before = tf.getBackend();
  await tf.setBackend(backend);
  try {
    return f();
  } finally {
    await tf.setBackend(before);
  }
}

/** wasm with the shim, quietly; the suite's other files expect cpu, so callers restore it. */
export async function useShimmedWasm(): Promise<void> {
  await selectBackend('wasm', { log: false });
  installWasmShim();
}

/**
 * For a mocha `before`: selects webgpu, or, when this machine has no WebGPU
 * (packages not installed, no adapter), prints why and skips the suite. Any
 * other failure to select it fails the suite.
 */
export async function webgpuOrSkip(ctx: Mocha.Context, suite: string): Promise<void> {
  const probe = await probeWebgpuAdapter();
  if (!probe.adapter) {
    console.log(`      skipped: ${suite}: no WebGPU here (${probe.why}); see the core README, "Getting a GPU"`);
    ctx.skip();
  }
  await selectBackend('webgpu', { log: false });
}

/**
 * For a mocha `before` of a suite run once per backend: installs the shim and the op and
 * gradient fixes (on every backend, through wasm), then selects `backend`, or skips the
 * suite with the reason printed when it is webgpu and this machine has none.
 */
export async function onBackendOrSkip(ctx: Mocha.Context, backend: string, suite: string): Promise<void> {
  await useShimmedWasm();
  if (backend === 'webgpu') await webgpuOrSkip(ctx, suite);
  else await tf.setBackend(backend);
}

export interface Box {
  y1: number;
  x1: number;
  y2: number;
  x2: number;
}

/** Float64 reference of CropAndResize (NHWC), the sampling rule of tfjs's and TensorFlow's kernels. */
export function cropReference(image: number[], [B, H, W, D]: number[], boxes: Box[], boxInd: number[], [cropH, cropW]: [number, number], method: 'bilinear' | 'nearest', extrapolation: number): number[] {
  const out: number[] = [];
  const px = (n: number, y: number, x: number, d: number) => image[((n * H + y) * W + x) * D + d];
  boxes.forEach((box, b) => {
    for (let y = 0; y < cropH; y++) {
      const iy = cropH > 1 ? box.y1 * (H - 1) + (y * (box.y2 - box.y1) * (H - 1)) / (cropH - 1) : 0.5 * (box.y1 + box.y2) * (H - 1);
      for (let x = 0; x < cropW; x++) {
        const ix = cropW > 1 ? box.x1 * (W - 1) + (x * (box.x2 - box.x1) * (W - 1)) / (cropW - 1) : 0.5 * (box.x1 + box.x2) * (W - 1);
        for (let d = 0; d < D; d++) {
          if (iy < 0 || iy > H - 1 || ix < 0 || ix > W - 1) out.push(extrapolation);
          else if (method === 'nearest') out.push(px(boxInd[b], Math.round(iy), Math.round(ix), d));
          else {
            const [t, l, bo, r] = [Math.floor(iy), Math.floor(ix), Math.ceil(iy), Math.ceil(ix)];
            const top = px(boxInd[b], t, l, d) + (px(boxInd[b], t, r, d) - px(boxInd[b], t, l, d)) * (ix - l);
            const bottom = px(boxInd[b], bo, l, d) + (px(boxInd[b], bo, r, d) - px(boxInd[b], bo, l, d)) * (ix - l);
            out.push(top + (bottom - top) * (iy - t));
          }
        }
      }
    }
  });
  return out;
}
