import * as tf from '@tensorflow/tfjs';
import { forwardSegments, segmentModel, vjp, type LossFn, type MemoryPlan, type MemoryPolicy, type Segment, type SegmentContext, type StepRequest, type TrainableModel } from '../../src';

// Small segment models for the memory tests: each segment is written out by hand.

let counter = 0;
const variable = (shape: number[], seed: number, scale: number): tf.Variable =>
  tf.variable(tf.mul(tf.randomNormal(shape, 0, 1, 'float32', seed), scale), true, `mem_${seed}_${counter++}`);

/** y = x + relu(x W1 + b1) W2 + b2 */
export function residualBlock(name: string, d: number, h: number, seed: number): Segment {
  const w1 = variable([d, h], seed, 1 / Math.sqrt(d));
  const b1 = variable([h], seed + 1, 0.1);
  const w2 = variable([h, d], seed + 2, 0.5 / Math.sqrt(h));
  const b2 = variable([d], seed + 3, 0.1);
  return {
    name,
    params: [w1, b1, w2, b2],
    forward: ([x]) => [tf.add(x, tf.add(tf.matMul(tf.relu(tf.add(tf.matMul(x, w1), b1)), w2), b2))],
  };
}

export function dense(name: string, d: number, out: number, seed: number): Segment {
  const w = variable([d, out], seed, 1 / Math.sqrt(d));
  const b = variable([out], seed + 1, 0.1);
  return { name, params: [w, b], forward: ([x]) => [tf.add(tf.matMul(x, w), b)] };
}

/** A residual MLP: `depth` blocks then a dense head. */
export function residualMlp(depth: number, d = 8, h = 16, classes = 3, seed = 10): TrainableModel {
  const blocks = Array.from({ length: depth }, (_, i) => residualBlock(`block${i}`, d, h, seed + 10 * i));
  return segmentModel([...blocks, dense('head', d, classes, seed + 10 * depth)], { inputShape: [d], outputShape: [classes] });
}

const conv = (x: tf.Tensor, w: tf.Variable): tf.Tensor4D => tf.conv2d(x as tf.Tensor4D, w as unknown as tf.Tensor4D, 1, 'same');

/** A small CNN: conv stem, `depth` residual conv blocks, global average pool + dense. */
export function smallCnn(depth: number, size = 6, channels = 4, classes = 3, seed = 50): TrainableModel {
  const stemW = variable([3, 3, 1, channels], seed, 0.3);
  const stem: Segment = { name: 'stem', params: [stemW], forward: ([x]) => [tf.relu(conv(x, stemW))] };
  const blocks: Segment[] = Array.from({ length: depth }, (_, i) => {
    const w1 = variable([3, 3, channels, channels], seed + 10 * i + 1, 0.2);
    const w2 = variable([3, 3, channels, channels], seed + 10 * i + 2, 0.2);
    return { name: `conv${i}`, params: [w1, w2], forward: ([x]) => [tf.add(x, conv(tf.relu(conv(x, w1)), w2))] };
  });
  const w = variable([channels, classes], seed + 999, 0.5);
  const head: Segment = { name: 'head', params: [w], forward: ([x]) => [tf.matMul(tf.mean(x, [1, 2]), w)] };
  return segmentModel([stem, ...blocks, head], { inputShape: [size, size, 1], outputShape: [classes] });
}

/**
 * Additive coupling (an invertible block on a pair of tensors):
 * y1 = x1 + tanh(x2 F), y2 = x2 + tanh(y1 G); inverse: x2 = y2 - tanh(y1 G), x1 = y1 - tanh(x2 F).
 */
export function couplingBlock(name: string, d: number, seed: number, calls?: { inverse: number; backward?: number }, fused = false): Segment {
  const f = variable([d, d], seed, 0.5 / Math.sqrt(d));
  const g = variable([d, d], seed + 1, 0.5 / Math.sqrt(d));
  const F = (x2: tf.Tensor) => tf.tanh(tf.matMul(x2, f));
  const G = (y1: tf.Tensor) => tf.tanh(tf.matMul(y1, g));
  const segment: Segment = {
    name,
    params: [f, g],
    forward: ([x1, x2]) => {
      const y1 = tf.add(x1, F(x2));
      return [y1, tf.add(x2, G(y1))];
    },
    inverse: ([y1, y2]) => {
      if (calls) calls.inverse++;
      const x2 = tf.sub(y2, G(y1));
      return [tf.sub(y1, F(x2)), x2];
    },
  };
  if (!fused) return segment;
  // RevNet's backward (docs/techniques.md §3.3): each half's function evaluated once, under its own tape.
  const grads = (vars: readonly tf.Variable[], got: Map<tf.Variable, tf.Tensor | null>) => vars.map((v) => got.get(v) ?? null);
  segment.backward = ([y1, y2], [dy1, dy2], vars) => {
    if (calls) calls.backward = (calls.backward ?? 0) + 1;
    const d1 = dy1 ?? tf.zerosLike(y1);
    const d2 = dy2 ?? tf.zerosLike(y2);
    const byG = vjp(() => G(y1), [y1, ...vars], d2);
    const x2 = tf.sub(y2, byG.value);
    const dz = byG.grads[0] ? tf.add(d1, byG.grads[0]) : d1;
    const byF = vjp(() => F(x2), [x2, ...vars], dz);
    const x1 = tf.sub(y1, byF.value);
    const dx2 = byF.grads[0] ? tf.add(d2, byF.grads[0]) : d2;
    const sum = new Map<tf.Variable, tf.Tensor | null>();
    vars.forEach((v, k) => {
      const parts = [byG.grads[k + 1], byF.grads[k + 1]].filter((t): t is tf.Tensor => t !== null);
      sum.set(v, parts.length ? parts.reduce((a, b) => tf.add(a, b)) : null);
    });
    return { xs: [x1, x2], dxs: [dz, dx2], grads: grads(vars, sum) };
  };
  return segment;
}

/** The same coupling on one tensor of width 2d (halves split inside), so it fits a single-tensor chain. */
export function coupledDense(name: string, d: number, seed: number): Segment {
  const pair = couplingBlock(name, d, seed);
  return {
    name,
    params: pair.params,
    forward: ([x], ctx) => [tf.concat(pair.forward(tf.split(x, 2, 1), ctx), 1)],
    inverse: ([y], ctx) => [tf.concat(pair.inverse!(tf.split(y, 2, 1), ctx), 1)],
  };
}

/** split -> coupling blocks -> concat -> dense head (the split has no parameters). */
export function reversibleNet(blocks: number, d = 4, classes = 3, calls?: { inverse: number; backward?: number }, fused = false): TrainableModel {
  const split: Segment = { name: 'split', params: [], forward: ([x]) => tf.split(x, 2, 1) };
  const couplings = Array.from({ length: blocks }, (_, i) => couplingBlock(`coupling${i}`, d, 200 + 10 * i, calls, fused));
  const merge: Segment = { name: 'merge', params: [], forward: (xs) => [tf.concat(xs, 1)], inverse: ([y]) => {
      if (calls) calls.inverse++;
      return tf.split(y, 2, 1);
    },
  };
  return segmentModel([split, ...couplings, merge, dense('head', 2 * d, classes, 300)], { inputShape: [2 * d], outputShape: [classes] });
}

export function planOf(model: TrainableModel, policy: (name: string, i: number) => MemoryPolicy): MemoryPlan {
  return { segments: model.segments.map((s, i) => ({ name: s.name, policy: policy(s.name, i) })), extraBytes: [] };
}

export const training: SegmentContext = { training: true, recomputing: false, step: 0 };

/** A Backprop request for `model` (all its variables unless given), as the trainer builds one. */
export function requestOf(
  model: TrainableModel,
  plan: MemoryPlan,
  x: tf.Tensor,
  y: tf.Tensor,
  loss: LossFn,
  options: { variables?: readonly tf.Variable[]; ctx?: SegmentContext } = {},
): StepRequest {
  return { x, y, segments: model.segments, ctx: options.ctx ?? training, variables: options.variables ?? [...new Set(model.segments.flatMap((s) => s.params))], plan, loss };
}

/** Plain autodiff of the whole step: the reference every policy must match. */
export function referenceGrads(
  model: TrainableModel,
  x: tf.Tensor,
  y: tf.Tensor,
  loss: (yTrue: tf.Tensor, yPred: tf.Tensor) => tf.Scalar,
): { value: number; grads: Record<string, Float64Array> } {
  const vars = [...new Set(model.segments.flatMap((s) => s.params))];
  const r = tf.variableGrads(() => loss(y, forwardSegments(model, x, training)), vars);
  const out = { value: r.value.dataSync()[0], grads: toArrays(r.grads) };
  tf.dispose([r.value, ...Object.values(r.grads)]);
  return out;
}

export function toArrays(grads: Record<string, tf.Tensor>): Record<string, Float64Array> {
  return Object.fromEntries(Object.entries(grads).map(([k, g]) => [k, Float64Array.from(g.dataSync())]));
}

/** ||a - b|| / ||b|| in float64. */
export function relativeError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
}

export function disposeModel(model: TrainableModel): void {
  tf.dispose([...new Set(model.segments.flatMap((s) => s.params))]);
}
