import { optionSchemas, parseOptions } from '@tapfit/core';
import { z } from 'zod';
import { PREDICTIONS, type Prediction } from './weight-prediction';

export type Compensation = 'none' | 'sc';

/** `pipeline(options)`: the split (exactly one of `stages` or `boundaries`) and the schedule's options. */
export type PipelineOptions = PipelineCommonOptions & PipelineSplit;

/**
 * How the model is split: exactly one of `stages` (balanced) or `boundaries` (explicit), so
 * `pipeline({})` and `pipeline({ stages, boundaries })` do not compile (both are refused at run time too).
 */
export type PipelineSplit =
  | {
      /** S, the number of stages (balanced by measured per-segment forward time). Give this or `boundaries`. */
      stages: number;
      boundaries?: undefined;
    }
  | {
      /** The first segment of every stage after the first, by name (S = boundaries.length + 1). Give this or `stages`. */
      boundaries: string[];
      stages?: undefined;
    };

/** The pipeline plugin's options besides the split (`PipelineSplit`). */
export interface PipelineCommonOptions {
  /** 'sc': Spike Compensation per stage with its D_s (docs/techniques.md §5.3); default 'none'. */
  compensation?: Compensation | undefined;
  /** Linear Weight Prediction per stage (docs/techniques.md §5.4); default 'none'. */
  prediction?: Prediction | undefined;
  /** Added to every D_s (forward and backward of a micro-batch in different ticks); default 0. */
  extraDelay?: number | undefined;
  /** Backward with the forward's weights (pure delay, no inconsistency); default false. */
  weightStashing?: boolean | undefined;
  /** Input shape without the batch axis, when the model does not know it (segment models): for balancing and the memory figures. */
  inputShape?: number[] | undefined;
  /** Micro-batch size the memory figures assume; default 1. */
  microBatch?: number | undefined;
  /** Log the stage table at setup; default false. */
  verbose?: boolean | undefined;
}

const { count } = optionSchemas;

/** Samples per micro-batch: the plugin's `microBatch` and the threaded executor's. */
export const microBatchSchema = count('a positive integer (samples per micro-batch)').min(1, 'must be a positive integer (samples per micro-batch)');

export const pipelineSchema = z
  .strictObject({
    stages: count('an integer >= 1').min(1, 'must be an integer >= 1').optional(),
    boundaries: z.array(z.string({ error: 'must be segment names' }), { error: 'must be a list of segment names' }).optional(),
    compensation: z.enum(['none', 'sc'], { error: "must be 'none' or 'sc'" }).default('none'),
    prediction: z.enum(PREDICTIONS as [Prediction, ...Prediction[]], { error: `must be one of ${PREDICTIONS.map((p) => `'${p}'`).join(', ')}` }).default('none'),
    extraDelay: count('an integer >= 0').min(0, 'must be an integer >= 0').default(0),
    weightStashing: z.boolean({ error: 'must be true or false' }).default(false),
    inputShape: z.array(count('a positive integer').min(1, 'must be positive integers')).optional(),
    microBatch: microBatchSchema.default(1),
    verbose: z.boolean({ error: 'must be true or false' }).default(false),
  })
  .refine((o) => (o.stages === undefined) !== (o.boundaries === undefined), { message: "give exactly one of 'stages' (balanced) or 'boundaries' (explicit)", path: ['stages'] })
  .refine((o) => o.boundaries === undefined || o.stages === undefined, { message: 'one of the two', path: ['boundaries'] });

export type ResolvedPipelineOptions = z.output<typeof pipelineSchema>;

export function resolvePipelineOptions(options: PipelineOptions): ResolvedPipelineOptions {
  return parseOptions('pipeline', pipelineSchema, options);
}
