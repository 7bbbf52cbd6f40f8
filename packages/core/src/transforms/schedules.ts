import { z } from 'zod';
import { nonNegative, parseOptions, positive, schedule, stepCount } from '../options';
import type { Schedule } from './types';

// Schedules map the step count (0 on the first update) to a hyperparameter value.
// Hyperparameters here are learning rates, momenta and decay factors, so values are >= 0.

/** Always `value`. */
export function constant(value: number): Schedule {
  const v = parseOptions('constant', z.object({ value: nonNegative }), { value }).value;
  return () => v;
}

/** Straight line from `from` (step 0) to `to` (step `steps` and after). */
export function linear(options: { from: number; to: number; steps: number }): Schedule {
  const { from, to, steps } = parseOptions(
    'linear',
    z.strictObject({ from: nonNegative, to: nonNegative, steps: stepCount.positive('must be >= 1') }),
    options,
  );
  return (step) => from + (to - from) * Math.min(step, steps) / steps;
}

/** `initial * gamma^floor(step / stepSize)` (PyTorch StepLR). */
export function stepDecay(options: { initial: number; stepSize: number; gamma: number }): Schedule {
  const { initial, stepSize, gamma } = parseOptions(
    'stepDecay',
    z.strictObject({ initial: nonNegative, stepSize: stepCount.positive('must be >= 1'), gamma: positive }),
    options,
  );
  return (step) => initial * gamma ** Math.floor(step / stepSize);
}

/**
 * `values[i]` from `boundaries[i-1]` (inclusive) to `boundaries[i]` (exclusive);
 * `values` has one more entry than `boundaries` (PyTorch MultiStepLR with explicit values).
 */
export function piecewiseConstant(options: { values: number[]; boundaries: number[] }): Schedule {
  const { values, boundaries } = parseOptions(
    'piecewiseConstant',
    z
      .strictObject({ values: z.array(nonNegative).min(1, 'needs at least one value'), boundaries: increasingSteps })
      .refine((o) => o.values.length === o.boundaries.length + 1, {
        message: 'must have exactly one more entry than boundaries',
        path: ['values'],
      }),
    options,
  );
  return (step) => values[segmentOf(step, boundaries)];
}

/**
 * Half-cosine from `initial` (step 0) to `final` (step `decaySteps` and after). Give the
 * end either as `final` or as `alpha`, the fraction of `initial` (optax's form); default 0.
 */
export function cosineDecay(options: {
  initial: number;
  decaySteps: number;
  final?: number | undefined;
  alpha?: number | undefined;
}): Schedule {
  const o = parseOptions(
    'cosineDecay',
    z
      .strictObject({
        initial: nonNegative,
        decaySteps: stepCount.positive('must be >= 1'),
        final: nonNegative.optional(),
        alpha: nonNegative.max(1, 'must be in [0, 1]').optional(),
      })
      .refine((o) => o.final === undefined || o.alpha === undefined, {
        message: "and 'alpha' both give the end value; pass only one",
        path: ['final'],
      }),
    options,
  );
  const { initial, decaySteps } = o;
  const final = o.final ?? (o.alpha ?? 0) * initial;
  return (step) => final + (initial - final) * 0.5 * (1 + Math.cos((Math.PI * Math.min(step, decaySteps)) / decaySteps));
}

/**
 * Run `schedules[i]` from `boundaries[i-1]` on, restarting its step count at the boundary
 * (optax join_schedules): `join([a, b], [100])(150) = b(50)`.
 */
export function joinSchedules(schedules: Schedule[], boundaries: number[]): Schedule {
  parseOptions(
    'joinSchedules',
    z
      .strictObject({ schedules: z.array(schedule).min(1, 'needs at least one schedule'), boundaries: increasingSteps })
      .refine((o) => o.schedules.length === o.boundaries.length + 1, {
        message: 'must have exactly one more entry than boundaries',
        path: ['schedules'],
      }),
    { schedules, boundaries },
  );
  const starts = [0, ...boundaries];
  return (step) => {
    const i = segmentOf(step, boundaries);
    return schedules[i](step - starts[i]);
  };
}

/**
 * Ramp linearly from `from` (default 0) at step 0 to `then(0)` at step `warmupSteps`, then
 * follow `then` with its step count starting at 0 (so `then` keeps its own length).
 */
export function linearWarmup(options: { warmupSteps: number; then: Schedule; from?: number | undefined }): Schedule {
  const { warmupSteps, then, from } = parseOptions(
    'linearWarmup',
    z.strictObject({
      warmupSteps: stepCount.min(0, 'must be >= 0'),
      then: schedule,
      from: nonNegative.default(0),
    }),
    options,
  );
  if (warmupSteps === 0) return then;
  return joinSchedules([linear({ from, to: then(0), steps: warmupSteps }), then], [warmupSteps]);
}

const increasingSteps = z
  .array(stepCount.min(1, 'must be >= 1'))
  .refine((b) => b.every((x, i) => i === 0 || x > b[i - 1]), 'must be strictly increasing');

/** Index of the segment `step` falls in: the number of boundaries at or below it. */
function segmentOf(step: number, boundaries: readonly number[]): number {
  let i = 0;
  while (i < boundaries.length && step >= boundaries[i]) i++;
  return i;
}
