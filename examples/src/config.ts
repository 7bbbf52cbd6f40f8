import { z } from 'zod';

/** Learning-rate schedule over the whole run: constant, or cosine decay to 0. */
const schedule = z.enum(['constant', 'cosine']).default('constant');

const pluginEntry = z.union([
  z.string(),
  z.tuple([z.string(), z.record(z.string(), z.unknown())]),
  z.object({ package: z.string(), options: z.record(z.string(), z.unknown()).optional() }),
]);

/** The `tapfit train` config file (babel/eslint style: plugins by package name with options). */
export const configSchema = z.object({
  backend: z.enum(['auto', 'tensorflow', 'wasm', 'cpu']).default('auto'),
  seed: z.number().int().nonnegative().default(0),
  model: z.object({
    preset: z.enum(['mnist-cnn', 'mnist-mlp']),
    options: z.record(z.string(), z.unknown()).default({}),
  }),
  data: z.object({
    dataset: z.enum(['mnist']),
    train: z.number().int().positive().max(10000).default(8000),
    test: z.number().int().positive().max(10000).default(2000),
  }),
  loss: z.enum(['softmaxCrossEntropy', 'categoricalCrossentropy', 'meanSquaredError']).default('softmaxCrossEntropy'),
  optimizer: z.discriminatedUnion('name', [
    z.object({ name: z.literal('sgd'), lr: z.number().positive(), schedule: schedule, momentum: z.number().min(0).lt(1).optional(), nesterov: z.boolean().optional(), weightDecay: z.number().nonnegative().optional() }),
    z.object({ name: z.literal('adam'), lr: z.number().positive(), schedule: schedule, b1: z.number().min(0).lt(1).optional(), b2: z.number().min(0).lt(1).optional(), eps: z.number().positive().optional() }),
    z.object({ name: z.literal('adamw'), lr: z.number().positive(), schedule: schedule, weightDecay: z.number().nonnegative().optional(), b1: z.number().min(0).lt(1).optional(), b2: z.number().min(0).lt(1).optional(), eps: z.number().positive().optional() }),
  ]),
  training: z.object({
    epochs: z.number().int().positive(),
    batchSize: z.number().int().positive().default(64),
  }),
  plugins: z.array(pluginEntry).default([]),
  log: z.object({ metrics: z.string().optional(), progress: z.boolean().default(true) }).default({ progress: true }),
});

export type TrainConfig = z.output<typeof configSchema>;
export type PluginEntry = z.output<typeof pluginEntry>;
