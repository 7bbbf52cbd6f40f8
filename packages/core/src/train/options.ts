import { z } from 'zod';

export const fitOptionsSchema = z.strictObject({
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
