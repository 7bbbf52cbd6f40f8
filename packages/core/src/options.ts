import { closest, distance } from 'fastest-levenshtein';
import { z } from 'zod';
import { ErrorCodes, TapfitError } from './errors';

/**
 * Validate a constructor's options with a zod schema and turn the first problems into
 * one TapfitError that names the constructor, the option and the value it got. Schemas
 * are strict, so a misspelt option (`weight_decay`) fails instead of being ignored, and
 * the error names the nearest valid option (`did you mean 'weightDecay'?`).
 */
export function parseOptions<T extends z.ZodType>(who: string, schema: T, options: unknown): z.output<T> {
  const result = schema.safeParse(options ?? {});
  if (result.success) return result.data;
  const problems = result.error.issues.map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const where = issue.path.length ? `'${issue.path.join('.')}.` : `'`;
      const valid = knownKeys(schema, issue.path, options);
      return `unknown option(s) ${issue.keys.map((k) => `${where}${k}'${suggest(k, valid)}`).join(', ')}`;
    }
    const option = issue.path.join('.');
    const got = describe(valueAt(options, issue.path));
    return option ? `option '${option}' ${issue.message} (got ${got})` : `${issue.message} (got ${got})`;
  });
  throw new TapfitError(ErrorCodes.CONFIG, `${who}: ${problems.join('; ')}.`);
}

/**
 * The keys an object schema accepts at `path` (empty when it cannot tell). Follows
 * arrays and unions; `value` (the whole input) picks a discriminated union's member by
 * its discriminator, so a typo in `{ name: 'sgd', momentun }` is matched against sgd's keys.
 */
export function knownKeys(schema: z.ZodType, path: readonly PropertyKey[], value?: unknown): string[] {
  let s: unknown = member(unwrap(schema), value);
  let v = value;
  for (const key of path) {
    v = (v as Record<PropertyKey, unknown> | undefined)?.[key];
    const def = (s as { def?: { type?: string; element?: unknown } }).def;
    const shape = (s as { shape?: Record<string, unknown> }).shape;
    if (def?.type === 'array' && typeof key === 'number') s = def.element;
    else if (shape && typeof key === 'string' && key in shape) s = shape[key];
    else return [];
    s = member(unwrap(s), v);
  }
  const shape = (s as { shape?: Record<string, unknown> }).shape;
  return shape ? Object.keys(shape) : [];
}

/** The object member of a union that `value` is meant for: by discriminator, else the only object member. */
function member(s: unknown, value: unknown): unknown {
  const def = (s as { def?: { type?: string; options?: unknown[]; discriminator?: string } }).def;
  if (def?.type !== 'union' || !def.options) return s;
  const objects = def.options.map(unwrap).filter((o) => (o as { shape?: unknown }).shape) as { shape: Record<string, z.ZodType> }[];
  const key = def.discriminator;
  if (key === undefined) return objects.length === 1 ? objects[0] : s;
  const tag = (value as Record<string, unknown> | undefined)?.[key];
  return objects.find((o) => o.shape[key]?.safeParse(tag).success) ?? s;
}

function unwrap(s: unknown): unknown {
  // default(), optional(), refine() and pipes wrap the object schema; follow them to it.
  for (let i = 0; i < 8; i++) {
    const def = (s as { def?: { innerType?: unknown; in?: unknown; schema?: unknown } })?.def;
    const inner = def?.innerType ?? def?.in ?? def?.schema;
    if (!inner || (s as { shape?: unknown }).shape) return s;
    s = inner;
  }
  return s;
}

/** ` (did you mean 'x'?)` when a valid name is within a few edits of `name`. */
export function suggest(name: string, valid: readonly string[]): string {
  if (!valid.length) return '';
  const near = closest(name, [...valid]);
  return distance(name.toLowerCase(), near.toLowerCase()) <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean '${near}'?)` : ` (valid: ${valid.join(', ')})`;
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

// Building blocks of option schemas, shared by core and plugins (exported as
// `optionSchemas`), so every package words its option errors the same way.

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
/** An integer, with `what` in the message: `count('a whole number of workers >= 1').min(1)`. */
export const count = (what: string) => z.number({ error: `must be ${what}` }).int(`must be ${what}`);
/** true or false. */
export const flag = z.boolean({ error: 'must be true or false' });

/** A schedule of the step, as transforms/types' `Schedule`. */
export const schedule = z.custom<(step: number) => number>((v) => typeof v === 'function', 'must be a function (step) => number');

/** A learning rate: a constant >= 0 or a schedule of the step. */
export const learningRate = z.union([nonNegative, schedule], {
  error: 'must be a number >= 0 or a schedule (step) => number',
});
