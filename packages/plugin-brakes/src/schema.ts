import { z } from 'zod';

// Building blocks of this package's option schemas (validated by core's parseOptions,
// which turns the first problems into one TapfitError naming the option and the value).

export const finite = z.number({ error: 'must be a finite number' });
export const nonNegative = finite.min(0, 'must be >= 0');
export const positive = finite.positive('must be > 0');
export const fraction = finite.min(0, 'must be in [0, 1)').lt(1, 'must be in [0, 1)');
export const count = (what: string) => z.number({ error: `must be ${what}` }).int(`must be ${what}`);
export const transformName = z
  .string()
  .min(1, 'must be a non-empty string')
  .refine((s) => !s.includes('/'), "must not contain '/' (it separates path segments)");
