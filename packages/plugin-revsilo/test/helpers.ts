import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { AutodiffBackprop, SegmentExecutor, selectBackend, trainableVariables, type LossFn, type MemoryPlan, type Segment, type SegmentContext, type TrainableModel } from '@tapfit/core';

export const training: SegmentContext = { training: true, recomputing: false, step: 0 };
export const replay: SegmentContext = { ...training, recomputing: true };
export const inference: SegmentContext = { training: false, recomputing: false, step: 0 };

/** Largest violation of |a - b| <= atol + rtol |b| (as numpy's allclose), in units of the allowance (<= 1 passes). */
export function allcloseRatio(a: ArrayLike<number>, b: ArrayLike<number>, rtol: number, atol: number): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < b.length; i++) {
    const r = Math.abs(a[i] - b[i]) / (atol + rtol * Math.abs(b[i]));
    if (!(r <= worst)) worst = r;
  }
  return worst;
}

/**
 * allclose with `atol` in units of the reference's scale (max(1, max |b|, magnitude)): float32
 * work on values of size m rounds by about 1e-7 m, so a rebuilt input or a gradient whose
 * parts were that large is exact only to that, however small its own elements are.
 */
export function expectAllclose(a: tf.Tensor | ArrayLike<number>, b: tf.Tensor | ArrayLike<number>, rtol: number, atol: number, what: string, magnitude = 1): void {
  const va = a instanceof tf.Tensor ? a.dataSync() : a;
  const vb = b instanceof tf.Tensor ? b.dataSync() : b;
  let scale = magnitude;
  for (let i = 0; i < vb.length; i++) scale = Math.max(scale, Math.abs(vb[i]));
  const r = allcloseRatio(va, vb, rtol, atol * scale);
  expect(r, `${what}: |a - b| / (atol * ${scale.toPrecision(3)} + rtol |b|) = ${r}`).to.be.at.most(1);
}

/** Runs segments in order. */
export function runSegments(segments: readonly Segment[], xs: tf.Tensor[], ctx: SegmentContext): tf.Tensor[] {
  for (const s of segments) xs = s.forward(xs, ctx);
  return xs;
}

/** Inverts segments last first (every one must have an inverse). */
export function invertSegments(segments: readonly Segment[], ys: tf.Tensor[], ctx: SegmentContext): tf.Tensor[] {
  for (const s of [...segments].reverse()) ys = s.inverse!(ys, ctx);
  return ys;
}

/** Loss and gradients of one step: plain autodiff of the stored twin, or the executor under `plan`. */
export function stepGradients(model: TrainableModel & { stored?(): TrainableModel }, x: tf.Tensor, y: tf.Tensor, loss: LossFn, plan: MemoryPlan | 'autodiff', ctx = training): { value: number; grads: Record<string, Float32Array> } {
  const variables = trainableVariables(model);
  const request = { x, y, segments: model.segments, ctx, variables, loss, plan: plan === 'autodiff' ? { segments: [], extraBytes: [] } : plan };
  const r = plan === 'autodiff' ? new AutodiffBackprop().compute(request) : new SegmentExecutor().compute(request);
  const out = { value: r.value.dataSync()[0], grads: Object.fromEntries(Object.entries(r.grads).map(([k, g]) => [k, g.dataSync() as Float32Array])) };
  tf.dispose([r.value, ...Object.values(r.grads)]);
  return out;
}

/** Every segment with an inverse planned 'invert', the rest 'store'. */
export function invertPlan(model: TrainableModel): MemoryPlan {
  return { segments: model.segments.map((s) => ({ name: s.name, policy: s.inverse ? 'invert' : 'store' })), extraBytes: [] };
}

/** Gradients equal within rtol 1e-4, atol 1e-6 (docs/techniques.md §2.7), every variable present in both. */
export function expectSameGradients(got: Record<string, Float32Array>, want: Record<string, Float32Array>, rtol = 1e-4, atol = 1e-6): void {
  expect(Object.keys(got).sort()).to.deep.equal(Object.keys(want).sort());
  for (const [name, g] of Object.entries(want)) expectAllclose(got[name], g, rtol, atol, name);
}

/** The model's variables' values (for state comparisons). */
export function valuesOf(variables: readonly tf.Variable[]): Float32Array[] {
  return variables.map((v) => Float32Array.from(v.dataSync()));
}

/** Selects the backend through core (its gradient fixes included) for the enclosing describe. */
/** The float32 values' bit patterns (for bit-for-bit comparisons). */
export function bitsOf(values: tf.Tensor | Float32Array): number[] {
  const data = values instanceof Float32Array ? values : (values.dataSync() as Float32Array);
  return Array.from(new Uint32Array(data.slice().buffer));
}

export function setBackend(name: 'cpu' | 'wasm' = 'cpu'): void {
  before(async () => {
    await selectBackend(name, { log: false });
    tf.env().set('PROD', true);
  });
}
