import * as tf from '@tensorflow/tfjs';
import { isSetupModuleSpec, optionSchemas, parseOptions, resolveLoss, SETUP_MODULE_FORMS } from '@tapfit/core';
import { z } from 'zod';
import { microBatchSchema, pipelineSchema } from '../options';
import type { Transport } from './transport';

const { finite, nonNegative, fraction, positive } = optionSchemas;
const shared = pipelineSchema.shape;

/** The longest a stage warms up by default (`warmUpMs`). */
export const DEFAULT_WARM_UP_MS = 1500;

/**
 * ThreadedPipeline.start's options, checked on the calling thread before any worker
 * starts: a typo such as compensation 'SC' would otherwise train without Spike
 * Compensation, and a bad value fail inside a worker.
 */
const threadedSchema = z
  .strictObject({
    model: z.custom<tf.LayersModel>((m) => m instanceof tf.LayersModel, 'must be a tfjs-layers LayersModel'),
    stages: shared.stages,
    boundaries: shared.boundaries,
    microBatch: microBatchSchema.default(1),
    loss: z.string({ error: "must be a core loss name (e.g. 'softmaxCrossEntropy'); a function cannot cross threads, export it from setupModule" }),
    optimizer: z.strictObject(
      { lr: finite.positive('must be > 0'), momentum: fraction, weightDecay: nonNegative.optional() },
      { error: 'must be { lr, momentum, weightDecay? } (SGD with PyTorch-form momentum)' },
    ),
    compensation: shared.compensation,
    prediction: shared.prediction,
    extraDelay: shared.extraDelay,
    weightStashing: shared.weightStashing,
    constraints: z.enum(['apply', 'ignore'], { error: "must be 'apply' or 'ignore'" }).default('apply'),
    backend: z.enum(['cpu', 'wasm'], { error: "must be 'cpu' or 'wasm'" }).default('wasm'),
    seed: z.number({ error: 'must be a whole number >= 0' }).int('must be a whole number >= 0').nonnegative('must be a whole number >= 0').default(0),
    startTimeoutMs: positive.default(120_000),
    warmUp: z.number({ error: 'must be a whole number >= 0 (passes)' }).int('must be a whole number >= 0 (passes)').nonnegative('must be a whole number >= 0 (passes)').default(300),
    warmUpMs: positive.default(DEFAULT_WARM_UP_MS),
    setupModule: z.string({ error: SETUP_MODULE_FORMS }).refine(isSetupModuleSpec, `${SETUP_MODULE_FORMS}: workers load it, not the caller`).optional(),
    transport: z.custom<Transport>((t) => typeof (t as Transport | undefined)?.pair === 'function' && typeof (t as Transport).link === 'function', 'must be a Transport { pair, link }').optional(),
  })
  .refine((o) => o.stages === undefined || o.boundaries === undefined, { message: "give one of 'stages' (balanced) or 'boundaries' (explicit), not both", path: ['boundaries'] });

export type ThreadedOptions = z.output<typeof threadedSchema>;

export function resolveThreadedOptions(options: unknown): ThreadedOptions {
  const o = parseOptions('pipeline: ThreadedPipeline.start', threadedSchema, options);
  resolveLoss(o.loss as never); // an unknown name fails here, naming the valid ones
  return o;
}

