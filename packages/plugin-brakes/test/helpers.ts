import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { transformStep, type NamedTensors, type StepTransform, type TransformState } from '@tapfit/core';
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
  tf.dispose(stateTensorsOf(state));
  Object.values(vars).forEach((v) => v.dispose());
  return out;
}

export function stateTensorsOf(state: unknown, out: tf.Tensor[] = []): tf.Tensor[] {
  if (state instanceof tf.Tensor) out.push(state);
  else if (state && typeof state === 'object') for (const v of Object.values(state)) stateTensorsOf(v, out);
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
