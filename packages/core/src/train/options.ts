import type * as tf from '@tensorflow/tfjs';
import { z } from 'zod';
import type { DataSource } from '../data/data-source';
import { ErrorCodes, TapfitError } from '../errors';
import type { CallbackHandlers } from './callbacks';

/** `true` when A and B are the same type (not merely assignable either way). */
type SameType<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

/** x or y of validationData: what fit takes (fit-inputs.ts's TensorLike, written out here so the two files do not import each other). */
type ValidationPart = tf.Tensor | tf.TensorLike;

/** model.fit's classWeight for a model with several outputs: a list, or a map by output name, of `{ class: weight }`. */
function perOutputClassWeight(v: unknown): boolean {
  return Array.isArray(v) || (typeof v === 'object' && v !== null && Object.values(v).some((w) => typeof w === 'object' && w !== null));
}
const PER_OUTPUT_CLASS_WEIGHT =
  "is model.fit's form for several outputs (a list, or a map by output name); tapfit trains models with one output: give one map of class index to weight, e.g. { 0: 1, 1: 5 }";

/**
 * `fit`'s options: what `model.fit` takes (tfjs-layers 4.22's ModelFitArgs, less
 * `unsupportedFitOptions`). Unknown options are errors naming the nearest valid one.
 */
export const fitOptionsSchema = z.strictObject({
  /** Epochs to train, from the trainer's position (with `initialEpoch`, or after Trainer.resume: the final epoch); default 1. */
  epochs: z.number().int().positive().default(1),
  batchSize: z.number().int().positive().default(32),
  /** Shuffle the training samples each epoch (seeded by the trainer's seed and the epoch); default true. */
  shuffle: z.boolean().default(true),
  /** Evaluate on this data at each epoch end (val_loss, val_acc, ...): a data source, or `[x, y]` as model.fit takes it. */
  // Typed for callers (z.custom checks nothing); fit-inputs refuses anything else, naming what it got.
  // tfjs's own type is in the union so that a `tf.ModelFitArgs` variable compiles; its multi-input forms are refused at run time, naming the fix.
  validationData: z.custom<readonly [ValidationPart, ValidationPart] | DataSource | NonNullable<tf.ModelFitArgs['validationData']>>().optional(),
  /** Hold out the LAST fraction of the samples (before shuffling, as model.fit) and evaluate on it each epoch. */
  validationSplit: z.number().gt(0, 'must be in (0, 1)').lt(1, 'must be in (0, 1)').optional(),
  /** tfjs callbacks: `{ onEpochEnd, ... }` objects, tf.Callback instances (e.g. tf.callbacks.earlyStopping()), or a list of them. */
  // Typed for callers (handlers only, so that inline handlers get their parameter types); FitCallbacks checks each one at run time.
  callbacks: z.custom<CallbackHandlers | readonly CallbackHandlers[]>().optional(),
  /** 0: silent; 1 or 2: one line per epoch through the logger. Default 1 for fit(x, y), 0 for fit(data). */
  verbose: z.union([z.literal(0), z.literal(1), z.literal(2)], { error: 'must be 0, 1 or 2' }).optional(),
  /** Start at this epoch (batch 0); without it, fit starts from the trainer's position (e.g. after resume). */
  initialEpoch: z.number().int().nonnegative().optional(),
  /** Weight of each class in the loss, by class index: `{ 0: 1, 1: 5 }`; needs a named loss or a loss function returning one loss per sample. */
  // Typed as tfjs's (a `tf.ModelFitArgs` variable compiles); its per-output forms are refused first, naming the one-output form.
  classWeight: z
    .custom<NonNullable<tf.ModelFitArgs['classWeight']>>((v) => !perOutputClassWeight(v), { error: PER_OUTPUT_CLASS_WEIGHT })
    .pipe(z.record(z.string(), z.number().nonnegative('must be >= 0')))
    .optional(),
  /**
   * model.fitDataset's: end each epoch after this many batches and read the data on from there
   * in the next (opened once per fit, not restarted each epoch). Data that runs out first ends
   * the fit with a warning, as fitDataset does. fit(data, options) only.
   */
  batchesPerEpoch: z.number().int().positive().optional(),
  /**
   * model.fitDataset's: validate each epoch on the first this many batches of a validationData
   * data source. With `[x, y]` validation, validationSplit, or none, it is ignored with a
   * warning, as model.fitDataset ignores it without a validation dataset.
   */
  validationBatches: z.number().int().positive().optional(),
  /**
   * model.fit's and model.fitDataset's; accepted and ignored (one info line): fit lets the event
   * loop turn once a second between steps whatever it says, which is what tfjs's 'auto' aims at.
   */
  yieldEvery: z.union([z.enum(['auto', 'batch', 'epoch', 'never']), z.number().nonnegative()], { error: "must be 'auto', 'batch', 'epoch', 'never' or a number of milliseconds" }).optional(),
});
/**
 * `fit`'s options as callers write them: model.fit's (tfjs-layers 4.22's ModelFitArgs)
 * and model.fitDataset's `batchesPerEpoch` and `validationBatches` (`yieldEvery` ignored). Written out (not
 * `z.input` of the schema) so that editors show each option's documentation; the
 * assertion below keeps it equal to the schema's input type.
 */
export interface FitOptions {
  /** Epochs to train, from the trainer's position (with `initialEpoch`, or after Trainer.resume: the final epoch); default 1. */
  epochs?: number | undefined;
  /** Samples per step; default 32 (fit(data): the source's batches are re-cut to this size). */
  batchSize?: number | undefined;
  /** Shuffle the training samples each epoch (seeded by the trainer's seed and the epoch); default true. */
  shuffle?: boolean | undefined;
  /**
   * Evaluate on this data at each epoch end (val_loss, val_acc, ...): a data source, or
   * `[x, y]` as model.fit takes it (one tensor or array each; tfjs's lists of tensors for
   * several inputs are refused at run time). Wins over `validationSplit`.
   */
  validationData?: readonly [tf.Tensor | tf.TensorLike, tf.Tensor | tf.TensorLike] | DataSource | NonNullable<tf.ModelFitArgs['validationData']> | undefined;
  /** Hold out the LAST fraction of the samples (before shuffling, as model.fit) and evaluate on it each epoch; in (0, 1). */
  validationSplit?: number | undefined;
  /** tfjs callbacks: `{ onEpochEnd, ... }` objects, tf.Callback instances (e.g. tf.callbacks.earlyStopping()), or a list of them. */
  callbacks?: CallbackHandlers | readonly CallbackHandlers[] | undefined;
  /** 0: silent; 1 or 2: one line per epoch through the logger. Default 1 for fit(x, y), 0 for fit(data). */
  verbose?: 0 | 1 | 2 | undefined;
  /** Start at this epoch (batch 0); without it, fit starts from the trainer's position (e.g. after resume). */
  initialEpoch?: number | undefined;
  /**
   * Weight of each class in the loss, by class index: `{ 0: 1, 1: 5 }`; needs a named loss or
   * a loss function returning one loss per sample. tfjs's per-output forms (a list, a map by
   * output name) are refused at run time: tapfit trains one output.
   */
  classWeight?: NonNullable<tf.ModelFitArgs['classWeight']> | undefined;
  /**
   * model.fitDataset's: end each epoch after this many batches and read the data on from there
   * in the next (opened once per fit, not restarted each epoch). Data that runs out first ends
   * the fit with a warning, as fitDataset does. fit(data, options) only.
   */
  batchesPerEpoch?: number | undefined;
  /**
   * model.fitDataset's: validate each epoch on the first this many batches of a validationData
   * data source. With `[x, y]` validation, validationSplit, or none, it is ignored with a
   * warning, as model.fitDataset ignores it without a validation dataset.
   */
  validationBatches?: number | undefined;
  /**
   * model.fit's and model.fitDataset's; taken and ignored with one info line: fit lets the
   * event loop turn once a second between steps, whatever it says.
   */
  yieldEvery?: 'auto' | 'batch' | 'epoch' | 'never' | number | undefined;
}
// Compile-time: the documented interface is the schema's input type, option for option.
true satisfies SameType<FitOptions, z.input<typeof fitOptionsSchema>>;
export type ParsedFitOptions = z.output<typeof fitOptionsSchema>;

/**
 * The model.fit options tapfit does not take, each with what to do instead. They are
 * refused by name: as unknown options they would get a near name suggested
 * (`validationSteps` -> `validationSplit`), a different feature.
 */
export const unsupportedFitOptions: Readonly<Record<string, string>> = {
  // tfjs-layers 4.22's model.fit throws on sampleWeight and passes stepsPerEpoch and validationSteps on as null.
  sampleWeight: 'weigh samples by their class with classWeight (model.fit refuses sampleWeight too)',
  stepsPerEpoch:
    "an epoch is one pass over the data: to end epochs after n batches, give model.fitDataset's batchesPerEpoch with a data source, fit(datasetData(ds, { batched: true }), { batchesPerEpoch: n }), which reads the data on across epochs as fitDataset does; or fit a slice of x that holds n batches",
  validationSteps:
    "validation runs over the whole validation data: to validate on n batches, give model.fitDataset's validationBatches with a validation data source, { validationData: datasetData(valDs, { batched: true }), validationBatches: n }; or pass validationData that holds n batches (e.g. a slice)",
};

/** model.fitDataset's options (tfjs-layers 4.22's ModelFitDatasetArgs) that fit does not take, each with what to do instead. */
export const unsupportedFitDatasetOptions: Readonly<Record<string, string>> = {
  validationBatchSize: 'validation runs at fit\'s batchSize (the mean over the validation data is the same at any batch size, up to float rounding); leave the option out',
};

/** Refuses the model.fit and model.fitDataset options tapfit does not take, naming each one's alternative. */
export function refuseUnsupportedFitOptions(options: unknown): void {
  if (typeof options !== 'object' || options === null) return;
  const refused = [
    ...Object.keys(unsupportedFitOptions).filter((k) => Object.hasOwn(options, k)).map((k) => `option '${k}' (model.fit's) is not supported by tapfit: ${unsupportedFitOptions[k]}`),
    ...Object.keys(unsupportedFitDatasetOptions).filter((k) => Object.hasOwn(options, k)).map((k) => `option '${k}' (model.fitDataset's) is not supported by tapfit: ${unsupportedFitDatasetOptions[k]}`),
  ];
  if (refused.length) throw new TapfitError(ErrorCodes.CONFIG, `fit: ${refused.join('; ')}.`);
}

/** `evaluate(x, y, options)` and `predict(x, options)`: model.evaluate's / model.predict's options. */
export const inferenceOptionsSchema = z.strictObject({
  batchSize: z.number().int().positive().default(32),
  /** Accepted for model.evaluate / model.predict compatibility; nothing is printed. */
  verbose: z.union([z.literal(0), z.literal(1), z.literal(2), z.boolean()]).optional(),
});
/** `evaluate` and `predict` options: model.evaluate's / model.predict's. */
export interface InferenceOptions {
  /** Samples per batch: default 32 for evaluate(x, y) and predict, 128 for evaluate(data). */
  batchSize?: number | undefined;
  /** Accepted for model.evaluate / model.predict compatibility; nothing is printed. */
  verbose?: 0 | 1 | 2 | boolean | undefined;
}
true satisfies SameType<InferenceOptions, z.input<typeof inferenceOptionsSchema>>;
true satisfies SameType<InferenceOptions, z.input<typeof dataEvaluateOptionsSchema>>;

export const trainerSettingsSchema = z.object({
  /** What to do when a step's loss is NaN or infinite. */
  nonFinite: z.enum(['throw', 'skip', 'off']).default('throw'),
  /** Weight constraints of a tfjs-layers model: projected after each update (Keras), or ignored (tfjs's model.fit). */
  constraints: z.enum(['apply', 'ignore']).default('apply'),
  /** Seed of data shuffling (and of plugins that ask for one). */
  seed: z.number().int().nonnegative().default(0),
});

/**
 * Every TrainerOptions key, so that a misspelt one (`plugin`, `metric`) is refused naming
 * the right one instead of being ignored; the objects are checked where they are used.
 */
export const trainerOptionsSchema = z.strictObject({
  ...trainerSettingsSchema.shape,
  model: z.any(),
  loss: z.any(),
  optimizer: z.any(),
  plugins: z.any().optional(),
  metrics: z.any().optional(),
  logger: z.any().optional(),
  memoryBudget: z.any().optional(),
});

/** evaluate(data, options): as evaluate(x, y)'s, with the larger default batch of a data source. */
export const dataEvaluateOptionsSchema = inferenceOptionsSchema.extend({ batchSize: z.number().int().positive().default(128) });
