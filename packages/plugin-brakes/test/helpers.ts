import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { arrayData, segmentModel, stateTensors, transformStep, type TapfitPlugin, type NamedTensors, type StepTransform, type TransformState } from '@tapfit/core';
import { blobData, tinyModel } from '@tapfit/core/testing';
import { copyParams, problem, problemGradient, type Params } from './reference';

/** Call inside a describe(): its tests run on `backend` (cpu, the reference, by default). */
export function useBackend(backend = 'cpu'): void {
  before(async () => {
    tf.env().set('PROD', true);
    await tf.setBackend(backend);
    await tf.ready();
  });
}

export function variables(p: Params, shapes: Record<string, number[]>): Record<string, tf.Variable> {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, tf.variable(tf.tensor(v, shapes[k]), true, `${k}_${nextId()}`)]));
}

let id = 0;
const nextId = () => id++;

export function tensors(p: Params, shapes: Record<string, number[]>): NamedTensors {
  return Object.fromEntries(Object.entries(p).map(([k, v]) => [k, tf.tensor(v, shapes[k])]));
}

export function read(xs: Record<string, tf.Tensor>): Params {
  return Object.fromEntries(Object.entries(xs).map(([k, t]) => [k, Array.from(t.dataSync())]));
}

/**
 * `steps` updates of `transform` on the test problem, with gradients evaluated (in
 * float64) at the current float32 weights. Returns the weights after every step, and
 * disposes everything it made.
 */
export function trajectory(transform: StepTransform, steps: number, w0: Params = problem.w0): Params[] {
  const vars = variables(copyParams(w0), problem.shapes);
  const params: Record<string, tf.Variable> = {};
  for (const [k, v] of Object.entries(vars)) params[k] = v;
  // Key by the short names so gradients and state read naturally.
  let state: TransformState = tf.tidy(() => transform.init(params));
  const out: Params[] = [];
  for (let t = 0; t < steps; t++) {
    const grads = tensors(problemGradient(read(params)), problem.shapes);
    state = transformStep(transform, params, grads, state, { step: t });
    tf.dispose(Object.values(grads));
    out.push(read(params));
  }
  tf.dispose(stateTensors(state));
  Object.values(vars).forEach((v) => v.dispose());
  return out;
}

/** |a - b| <= tol * max(1, |b|) elementwise, with a message naming where. */
export function expectClose(a: Params, b: Params, tol: number, where = ''): void {
  for (const k of Object.keys(b)) {
    b[k].forEach((y, i) => {
      const x = a[k][i];
      expect(Math.abs(x - y), `${where} ${k}[${i}]: ${x} vs ${y}`).to.be.at.most(tol * Math.max(1, Math.abs(y)));
    });
  }
}

/** Runs `fn` and returns the TapfitError it throws (fails the test if it does not throw). */
export function errorOf(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (err) {
    return err as Error & { code?: string };
  }
  expect.fail('expected an error');
}

/**
 * The 1-D quadratic L = h w^2 / 2 as a trainer model: one scalar weight, inputs of ones,
 * prediction x * w, loss h/2 * mean(pred^2); so the gradient is h w. `weight()` reads w.
 */
export function quadraticSetup(o: { h: number; w0: number; batches: number }) {
  const w = tf.variable(tf.scalar(o.w0));
  const model = segmentModel([{ name: 'w', params: [w], forward: (xs) => [tf.mul(xs[0], w)] }], { inputShape: [1] });
  const loss = (_y: tf.Tensor, pred: tf.Tensor) => tf.mul(tf.mean(tf.square(pred)), o.h / 2) as tf.Scalar;
  const data = arrayData({ x: new Float32Array(o.batches).fill(1), y: new Float32Array(o.batches), xShape: [1], yShape: [1] });
  return { w, model, loss, data, weight: () => w.dataSync()[0] };
}

/** A plugin that records a value after every batch. */
export function recorder(read: () => number): TapfitPlugin & { values: number[] } {
  const values: number[] = [];
  return { name: 'recorder', core: '^0.1.0', values, apply: ({ hooks }) => hooks.batchEnd.tap('recorder', () => void values.push(read())) };
}

/** A small seeded classification problem and an MLP for it: core's testing kit. */
export const blobs = (n = 96, seed = 1) => blobData(n, { seed });
export const tinyMlp = (seed = 1) => tinyModel({ seed });
