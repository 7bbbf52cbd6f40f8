// A float64 reference of the simulated pipeline (docs/techniques.md §5.2-§5.4) for a
// chain of tanh layers (one weight matrix per stage, the last one linear) with the mean
// squared error, written from the equations in plain TypeScript.
import * as tf from '@tensorflow/tfjs';
import { segmentModel, readParam, type Segment, type TrainableModel } from '@tapfit/core';
import { seededRandom } from '@tapfit/core/testing';

type Matrix = number[][];

export interface ReferenceOptions {
  sizes: number[]; // layer widths: sizes[0] inputs ... sizes[S] outputs
  delays: number[];
  lr: number;
  momentum: number;
  compensation: 'none' | 'sc';
  prediction: 'none' | 'lwp-velocity' | 'lwp-delta';
  weightStashing: boolean;
}

const matmul = (a: Matrix, b: Matrix): Matrix => a.map((row) => b[0].map((_, j) => row.reduce((s, x, k) => s + x * b[k][j], 0)));
const transpose = (a: Matrix): Matrix => a[0].map((_, j) => a.map((row) => row[j]));
const map2 = (a: Matrix, b: Matrix, f: (x: number, y: number) => number): Matrix => a.map((row, i) => row.map((x, j) => f(x, b[i][j])));
const scale = (a: Matrix, s: number): Matrix => a.map((row) => row.map((x) => x * s));
const clone = (a: Matrix): Matrix => a.map((r) => [...r]);

export function initialWeights(sizes: number[], seed: number): Matrix[] {
  const r = seededRandom(seed);
  return sizes.slice(0, -1).map((n, i) => Array.from({ length: n }, () => Array.from({ length: sizes[i + 1] }, () => (r() * 2 - 1) * 0.8)));
}

/** The same model as tapfit segments (hand-written: they read their weight through readParam). */
export function segmentsOf(weights: Matrix[]): { model: TrainableModel; variables: tf.Variable[] } {
  const variables = weights.map((w, i) => tf.variable(tf.tensor2d(w), true, `ref_w${i}_${Math.random().toString(36).slice(2, 8)}`));
  const last = weights.length - 1;
  const segments: Segment[] = variables.map((v, i) => ({
    name: `layer${i + 1}`,
    params: [v],
    forward: ([x], ctx) => [i === last ? tf.matMul(x, readParam(ctx, v)) : tf.tanh(tf.matMul(x, readParam(ctx, v)))],
  }));
  return { model: segmentModel(segments, { inputShape: [weights[0].length] }), variables };
}

export class PipelineReference {
  w: Matrix[];
  private v: Matrix[];
  private entries: Map<number, Matrix>[];
  private previous: (Matrix | undefined)[];
  private t = 0;

  constructor(
    weights: Matrix[],
    private readonly o: ReferenceOptions,
  ) {
    this.w = weights.map(clone);
    this.v = weights.map((w) => scale(w, 0));
    this.entries = weights.map(() => new Map());
    this.previous = weights.map(() => undefined);
  }

  private record(): void {
    this.w.forEach((w, s) => {
      const D = this.o.delays[s];
      let entry = clone(w);
      if (this.o.prediction === 'lwp-velocity') entry = map2(w, this.v[s], (a, b) => a - D * this.o.lr * b);
      if (this.o.prediction === 'lwp-delta') entry = map2(w, this.previous[s] ?? w, (a, b) => a + D * (a - b));
      this.entries[s].set(this.t, entry);
      this.previous[s] = clone(w);
    });
  }

  step(x: number[], y: number[]): number {
    const { delays, lr, momentum: m } = this.o;
    const S = this.w.length;
    this.record();
    const fw = this.w.map((_, s) => this.entries[s].get(Math.max(0, this.t - delays[s]))!);
    // Forward at the recorded weights; keep each stage's input.
    const inputs: Matrix[] = [];
    let h: Matrix = [x];
    for (let s = 0; s < S; s++) {
      inputs.push(h);
      const z = matmul(h, fw[s]);
      h = s === S - 1 ? z : z.map((r) => r.map(Math.tanh));
    }
    // Backward: each stage recomputed from its input at the current (or stashed) weights.
    const grads: Matrix[] = [];
    let dh: Matrix = [];
    let loss = 0;
    for (let s = S - 1; s >= 0; s--) {
      const wb = this.o.weightStashing ? fw[s] : this.w[s];
      const z = matmul(inputs[s], wb);
      let dz: Matrix;
      if (s === S - 1) {
        const out = delays[s] === 0 ? z : h; // the loss of the forward when the last stage is delayed too
        loss = out[0].reduce((a, o, j) => a + (o - y[j]) ** 2, 0) / y.length;
        dz = [z[0].map((o, j) => (2 * (o - y[j])) / y.length)];
      } else {
        dz = map2(dh, z, (d, zz) => d * (1 - Math.tanh(zz) ** 2));
      }
      grads[s] = matmul(transpose(inputs[s]), dz);
      dh = matmul(dz, transpose(wb));
    }
    // Update: SGDM per stage, with Spike Compensation a v + b g when asked.
    this.w = this.w.map((w, s) => {
      this.v[s] = map2(this.v[s], grads[s], (v, g) => m * v + g);
      const D = this.o.compensation === 'sc' ? delays[s] : 0;
      const a = m ** D;
      let b = 0;
      for (let k = 0; k < D; k++) b += m ** k;
      const dir = map2(this.v[s], grads[s], (v, g) => a * v + b * g);
      return map2(w, dir, (x, d) => x - lr * d);
    });
    for (let s = 0; s < S; s++) for (const k of [...this.entries[s].keys()]) if (k <= this.t - delays[s]) this.entries[s].delete(k);
    this.t++;
    return loss;
  }
}
