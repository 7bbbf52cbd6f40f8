// Runs a StepTransform on the reference problem with the trainer's memory pattern
// (transformStep: update + apply inside tidy, keep the new state, dispose the old).

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import type { NamedTensors } from '../../src/tensors';
import { stateTensors, transformStep, type StepTransform, type TransformState } from '../../src/transforms';
import { problem as defaultProblem, type Params, type Problem, type Withheld } from './reference';

export function useCpuBackend(): void {
  before(async () => {
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
    await tf.ready();
  });
}

export function makeParams(values: Params, p: Problem = defaultProblem): Record<string, tf.Variable> {
  const out: Record<string, tf.Variable> = {};
  // tidy frees the initial tensor; the variable holds its own reference to the data.
  for (const k of Object.keys(values)) out[k] = tf.tidy(() => tf.variable(tf.tensor(values[k], p.shapes[k], 'float32')));
  return out;
}

/** The same gradient as reference.gradient, in float32 tf ops. */
export function tfGradient(params: Record<string, tf.Variable>, p: Problem = defaultProblem): NamedTensors {
  return tf.tidy(() => {
    const g: NamedTensors = {};
    for (const k of Object.keys(params)) {
      const d = tf.sub(params[k], tf.tensor(p.c[k], p.shapes[k]));
      g[k] = tf.add(tf.mul(tf.tensor(p.h[k], p.shapes[k]), d), tf.mul(p.q, tf.pow(d, 3)));
    }
    return g;
  });
}

export function readParams(params: Record<string, tf.Variable>): Params {
  const out: Params = {};
  for (const k of Object.keys(params)) out[k] = Array.from(params[k].dataSync());
  return out;
}

export interface Run<S extends TransformState> {
  trajectory: Params[];
  /** The tensor count after each step (steady from the first step on: nothing leaks, nothing is dropped). */
  tensorCounts: number[];
  params: Record<string, tf.Variable>;
  state: S;
  dispose(): void;
}

/**
 * `steps` steps of `t` from `from.params` (default the problem's w0) and `from.state` (default
 * init); `from.withheld` leaves gradients out at the given steps (counted from this run's first).
 */
export function runTransform<S extends TransformState>(
  t: StepTransform<S>,
  steps: number,
  from: { params?: Params; state?: S; firstStep?: number; withheld?: Withheld } = {},
): Run<S> {
  const params = makeParams(from.params ?? defaultProblem.w0);
  let state = from.state ?? t.init(params);
  const trajectory: Params[] = [];
  const tensorCounts: number[] = [];
  for (let i = 0; i < steps; i++) {
    const grads = tfGradient(params);
    const given = { ...grads };
    for (const k of from.withheld?.[i] ?? []) delete given[k];
    state = transformStep(t, params, given, state, { step: (from.firstStep ?? 0) + i });
    tf.dispose(grads);
    trajectory.push(readParams(params));
    tensorCounts.push(tf.memory().numTensors);
  }
  const finalState = state;
  return {
    trajectory,
    tensorCounts,
    params,
    state: finalState,
    dispose: () => {
      tf.dispose(Object.values(params));
      tf.dispose(stateTensors(finalState));
    },
  };
}

/** Every step's parameters within `rtol * |ref| + atol` of the float64 reference. */
export function expectTrajectoryClose(actual: Params[], expected: Params[], tol = { rtol: 1e-5, atol: 1e-6 }): void {
  expect(actual.length).to.equal(expected.length);
  actual.forEach((params, step) => {
    for (const k of Object.keys(expected[step])) {
      expected[step][k].forEach((r, i) => {
        const a = params[k][i];
        if (!(Math.abs(a - r) <= tol.atol + tol.rtol * Math.abs(r))) {
          expect.fail(`step ${step + 1}, ${k}[${i}]: got ${a}, reference ${r} (|diff| ${Math.abs(a - r)})`);
        }
      });
    }
  });
}

/** The trajectory actually moved: guards against a comparison that would pass for a no-op. */
export function expectMoved(trajectory: Params[], start: Params = defaultProblem.w0, atLeast = 0.1): void {
  const last = trajectory[trajectory.length - 1];
  let moved = 0;
  for (const k of Object.keys(start)) start[k].forEach((x, i) => (moved = Math.max(moved, Math.abs(last[k][i] - x))));
  expect(moved, 'largest parameter change over the run').to.be.greaterThan(atLeast);
}
