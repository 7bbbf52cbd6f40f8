import * as tf from '@tensorflow/tfjs';
import { isSetupModuleSpec, losses, optionSchemas, SETUP_MODULE_FORMS, type Logger, type LossName, type StepTransform } from '@tapfit/core';
import { z } from 'zod';
const { count, positive } = optionSchemas;

export interface AsyncTrainOptions {
  /** The master copy (tfjs-layers), trained in place. Workers build theirs from its JSON topology. */
  model: tf.LayersModel;
  /** Training samples (x, y with the sample axis first), e.g. core's TensorData. Read once into shared memory. */
  data: { x: tf.Tensor; y: tf.Tensor };
  /** A core loss name (functions cannot cross threads: export `loss` from setupModule instead). */
  loss: LossName;
  /** Applied on the main thread as gradients arrive, e.g. sgd({ lr, momentum }) or withAdaptiveBraking(...). */
  optimizer: StepTransform | readonly StepTransform[];
  /** K gradient workers (worker_threads), each with its own TF.js. */
  workers: number;
  /** Updates to apply; training ends when this many gradients have been applied. */
  steps: number;
  /** Samples per gradient; default 32. Each worker draws full batches from its shard (every K-th sample). */
  batchSize?: number | undefined;
  /** The workers' TF.js backend; default 'wasm' (core's selectBackend, with its training shim). */
  backend?: 'wasm' | 'cpu' | undefined;
  /**
   * A module each worker loads (with import(): CommonJS or ESM, top-level await included)
   * before building the model: an absolute path or a file: URL. It may export
   * `setup({ workerIndex })` (register custom layers or kernels; may be async) and
   * `loss(yTrue, yPred)` (used instead of `loss`).
   */
  setupModule?: string | undefined;
  /** Shuffling seed of the workers' batches; default 0. With 2 or more workers the arrival order of their gradients varies, so runs are not reproducible whatever the seed. */
  seed?: number | undefined;
  /** A worker that has not answered a gradient request within this many ms is stopped as hung; default 120000. */
  timeoutMs?: number | undefined;
  /** A worker that is not ready (TF.js loaded, model built) within this many ms is stopped; default 120000. */
  startTimeoutMs?: number | undefined;
  /** A gradient whose loss is not finite: 'throw' (default, stops training) or 'skip' it. */
  nonFinite?: 'throw' | 'skip' | undefined;
  /** The model's weight constraints (`kernelConstraint`, ...): 'apply' (default) projects after each update, as the trainer and Keras do; 'ignore' as tfjs's model.fit. */
  constraints?: 'apply' | 'ignore' | undefined;
  /** Called after every applied update (synchronously; keep it cheap). */
  onUpdate?: ((info: UpdateInfo) => void) | undefined;
  /** Where worker failures are reported (warn); default console.warn. */
  logger?: Logger | undefined;
}

export interface UpdateInfo {
  /** Updates applied so far, this one included. */
  step: number;
  worker: number;
  staleness: number;
  loss: number;
}

const lossNames = Object.keys(losses);

export const asyncTrainSchema = z.strictObject({
  model: z.custom<tf.LayersModel>((m) => m instanceof tf.LayersModel, 'must be a tfjs-layers model (tf.sequential or tf.model)'),
  data: z.object(
    {
      x: z.custom<tf.Tensor>((t) => t instanceof tf.Tensor, 'must be a tensor'),
      y: z.custom<tf.Tensor>((t) => t instanceof tf.Tensor, 'must be a tensor'),
    },
    { error: 'must be { x, y } tensors (e.g. a TensorData)' },
  ),
  loss: z.enum(lossNames as [string, ...string[]], {
    error: `must be one of ${lossNames.join(', ')} (for another loss, export it as \`loss\` from setupModule)`,
  }),
  optimizer: z.custom<StepTransform | StepTransform[]>(
    (o) => (Array.isArray(o) ? o.length > 0 && o.every(isTransform) : isTransform(o)),
    'must be a step transform or a list of them (e.g. sgd({ lr, momentum })); a black-box tf.train optimizer cannot be used',
  ),
  workers: count('an integer >= 1').min(1, 'must be an integer >= 1'),
  steps: count('an integer >= 1').min(1, 'must be an integer >= 1'),
  batchSize: count('an integer >= 1').min(1, 'must be an integer >= 1').default(32),
  backend: z.enum(['wasm', 'cpu'], { error: "must be 'wasm' or 'cpu'" }).default('wasm'),
  setupModule: z.string().refine(isSetupModuleSpec, SETUP_MODULE_FORMS).optional(),
  seed: count('an integer').default(0),
  timeoutMs: positive.default(120_000),
  startTimeoutMs: positive.default(120_000),
  nonFinite: z.enum(['throw', 'skip'], { error: "must be 'throw' or 'skip'" }).default('throw'),
  constraints: z.enum(['apply', 'ignore'], { error: "must be 'apply' or 'ignore'" }).default('apply'),
  onUpdate: z.custom<(info: UpdateInfo) => void>((f) => typeof f === 'function', 'must be a function').optional(),
  logger: z.custom<Logger>((l) => typeof (l as Logger)?.warn === 'function', 'must be a Logger { info, warn }').optional(),
});

export type ResolvedAsyncTrainOptions = z.output<typeof asyncTrainSchema>;

function isTransform(t: unknown): boolean {
  return typeof t === 'object' && t !== null && typeof (t as StepTransform).init === 'function' && typeof (t as StepTransform).update === 'function';
}
