import { z } from 'zod';
import { ErrorCodes, TapfitError } from '../errors';

/** Validates plain option objects with zod; the message names the option path and the problem. */
export function parseOptions<T extends z.ZodType>(schema: T, value: unknown, what: string): z.infer<T> {
  const r = schema.safeParse(value);
  if (r.success) return r.data;
  const issues = r.error.issues.map((i) => `${[what, ...i.path.map(String)].join('.')}: ${i.message}`);
  throw new TapfitError(ErrorCodes.CONFIG, `invalid options: ${issues.join('; ')}`);
}

export const fitOptionsSchema = z.object({
  epochs: z.number().int().positive(),
  batchSize: z.number().int().positive().default(32),
  shuffle: z.boolean().default(true),
  /** Evaluate on this data at each epoch end (val_loss, val_accuracy, ...). */
  validationData: z.any().optional(),
});
export type FitOptions = z.input<typeof fitOptionsSchema>;

export const trainerSettingsSchema = z.object({
  /** What to do when a step's loss is NaN or infinite. */
  nonFinite: z.enum(['throw', 'skip', 'off']).default('throw'),
  /** Seed of data shuffling (and of plugins that ask for one). */
  seed: z.number().int().nonnegative().default(0),
});
