import { z } from 'zod';
import { ErrorCodes, TapfitError } from '../errors';
import type { Schedule } from './types';

/**
 * Validate a constructor's options with a zod schema and turn the first problems into
 * one TapfitError that names the constructor, the option and the value it got. Schemas
 * are strict, so a misspelt option (`weight_decay`) fails instead of being ignored.
 */
export function parseOptions<T extends z.ZodType>(who: string, schema: T, options: unknown): z.output<T> {
  const result = schema.safeParse(options ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return `unknown option(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    }
    const option = issue.path.join('.');
    const got = describe(valueAt(options, issue.path));
    return option ? `option '${option}' ${issue.message} (got ${got})` : `${issue.message} (got ${got})`;
  });
  throw new TapfitError(ErrorCodes.CONFIG, `${who}: ${problems.join('; ')}.`);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const key of path) value = (value as Record<PropertyKey, unknown> | undefined)?.[key];
  return value;
}

function describe(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'string') return `'${value}'`;
  return String(value);
}

// Building blocks shared by the transform and schedule schemas.

/** Transform names key the chain state and address members as paths ('sgd/momentum'). */
export const transformName = z
  .string()
  .min(1, 'must be a non-empty string')
  .refine((s) => !s.includes('/'), "must not contain '/' (it separates path segments)");

export const finite = z.number({ error: 'must be a finite number' });
export const nonNegative = finite.min(0, 'must be >= 0');
export const positive = finite.positive('must be > 0');
export const fraction = finite.min(0, 'must be in [0, 1)').lt(1, 'must be in [0, 1)');
export const stepCount = z
  .number({ error: 'must be an integer number of steps' })
  .int('must be an integer number of steps');

export const schedule = z.custom<Schedule>((v) => typeof v === 'function', 'must be a function (step) => number');

/** A learning rate: a constant >= 0 or a schedule of the step. */
export const learningRate = z.union([nonNegative, schedule], {
  error: 'must be a number >= 0 or a schedule (step) => number',
});
