import { z } from 'zod';
import { count, parseOptions, positive } from '../options';
import { isSetupModuleSpec, SETUP_MODULE_FORMS } from '../model/worker-setup-module';

export interface DataParallelOptions {
  /** How many parts each batch is split into: the main thread computes one, a worker thread each of the others. Default 2. */
  replicas?: number | undefined;
  /**
   * A module each worker loads first (absolute path or file: URL, CommonJS or ESM): may
   * export `setup({ replica })` (register custom layer classes there) and `loss` (the
   * trainer's loss when it is a function, which cannot cross threads).
   */
  setupModule?: string | undefined;
  /** The workers' backend (1 thread each); default 'wasm'. */
  backend?: 'wasm' | 'cpu' | undefined;
  /** A worker not ready (TF.js loaded, setupModule run, model built) within this many ms fails the setup; default 120000. */
  startTimeoutMs?: number | undefined;
  /** A worker that has not answered a step within this many ms fails the step; default 600000. */
  stepTimeoutMs?: number | undefined;
}

const schema = z.strictObject({
  replicas: count('an integer from 2 to 16').min(2, 'must be an integer from 2 to 16').max(16, 'must be an integer from 2 to 16').default(2),
  setupModule: z.string({ error: SETUP_MODULE_FORMS }).refine(isSetupModuleSpec, `${SETUP_MODULE_FORMS}: workers load it, not the caller`).optional(),
  backend: z.enum(['wasm', 'cpu'], { error: "must be 'wasm' or 'cpu'" }).default('wasm'),
  startTimeoutMs: positive.default(120_000),
  stepTimeoutMs: positive.default(600_000),
});

export type ResolvedDataParallelOptions = z.output<typeof schema>;

export function resolveDataParallelOptions(options: DataParallelOptions | undefined): ResolvedDataParallelOptions {
  return parseOptions('dataParallel', schema, options ?? {});
}
