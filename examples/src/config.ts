import { BACKEND_PREFERENCES, optionSchemas as o } from '@tapfit/core';
import { z } from 'zod';
import { pluginSpecProblem } from './plugin-spec';

// Every object is strict: a misspelt key (`trainig`, `momentun`) fails validation with the
// nearest valid name instead of being dropped silently.

/** Learning-rate schedule over the whole run: constant, or cosine decay to 0. */
const schedule = z.enum(['constant', 'cosine']).default('constant');
const wholeNumber = (what: string) => o.count(what).min(1, `must be ${what}`);

const packageName = z.string({ error: 'must be a plugin package name' }).superRefine((spec, ctx) => {
  const problem = pluginSpecProblem(spec);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
const pluginOptions = z.record(z.string(), z.unknown());
const pluginEntry = z.union([packageName, z.tuple([packageName, pluginOptions]), z.strictObject({ package: packageName, options: pluginOptions.optional() })], {
  error: "must be a package name, [name, options] or { package, options }",
});

const model = z.discriminatedUnion('preset', [
  z.strictObject({
    preset: z.literal('mnist-cnn'),
    options: z.strictObject({ norm: z.enum(['none', 'batchNorm']).optional() }).default({}),
  }),
  z.strictObject({
    preset: z.literal('mnist-mlp'),
    options: z.strictObject({ hidden: z.array(wholeNumber('a whole number of units >= 1')).min(1, 'must list at least one layer width').optional() }).default({}),
  }),
]);

const lr = o.positive;
const optimizer = z.discriminatedUnion('name', [
  z.strictObject({ name: z.literal('sgd'), lr, schedule, momentum: o.fraction.optional(), nesterov: o.flag.optional(), weightDecay: o.nonNegative.optional() }),
  z.strictObject({ name: z.literal('adam'), lr, schedule, b1: o.fraction.optional(), b2: o.fraction.optional(), eps: o.positive.optional() }),
  z.strictObject({ name: z.literal('adamw'), lr, schedule, weightDecay: o.nonNegative.optional(), b1: o.fraction.optional(), b2: o.fraction.optional(), eps: o.positive.optional() }),
]);

/** The `tapfit train` config file (babel/eslint style: plugins by package name with options). */
export const configSchema = z.strictObject({
  backend: z.enum(BACKEND_PREFERENCES).default('auto'),
  seed: o.count('a whole number >= 0').min(0, 'must be a whole number >= 0').default(0),
  model,
  data: z
    .strictObject({
      dataset: z.enum(['mnist']),
      train: wholeNumber('a whole number of digits in 1..10000').max(10000, 'must be a whole number of digits in 1..10000').default(8000),
      test: wholeNumber('a whole number of digits in 1..10000').max(10000, 'must be a whole number of digits in 1..10000').default(2000),
    })
    .refine((d) => d.train + d.test <= 10000, { path: ['test'], message: 'must leave the train split room: data.train + data.test must be <= 10000 (the splits are disjoint)' }),
  loss: z
    .enum(['softmaxCrossEntropy', 'categoricalCrossentropy', 'meanSquaredError'])
    .default('softmaxCrossEntropy')
    // The presets end in logits; categoricalCrossentropy reads probabilities (it trained an MLP to 33 % where softmaxCrossEntropy reached 82 %).
    .refine((l) => l !== 'categoricalCrossentropy', "must not be 'categoricalCrossentropy' with the presets, which output logits (no softmax): use 'softmaxCrossEntropy', the same loss computed from logits"),
  optimizer,
  training: z.strictObject({
    epochs: wholeNumber('a whole number of epochs >= 1'),
    batchSize: wholeNumber('a whole number >= 1').default(64),
  }),
  /** Save `dir/step-<n>` every `every` steps (if set) and at each epoch end; `--resume` continues from it. */
  checkpoint: z
    .strictObject({
      dir: z.string().min(1, 'must be a folder path'),
      every: wholeNumber('a whole number of steps >= 1').optional(),
    })
    .optional(),
  plugins: z.array(pluginEntry).default([]),
  log: z
    .strictObject({
      metrics: z.string().min(1, 'must be a file path').optional(),
      progress: o.flag.default(true),
      /** Folder for the training report (report.html, report.json); `--report` overrides it. */
      report: z.string().min(1, 'must be a folder path').optional(),
    })
    .default({ progress: true }),
});

export type TrainConfig = z.output<typeof configSchema>;
export type PluginEntry = z.output<typeof pluginEntry>;
