import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { DataSource } from '../data/data-source';
import { allWholeNumbers } from '../data/labels';
import { arrayData, TensorData } from '../data/tensor-data';
import { DatasetData } from '../data/dataset-data';
import { parseOptions } from '../options';
import { fitOptionsSchema, inferenceOptionsSchema, refuseUnsupportedFitOptions, type ParsedFitOptions } from './options';

/** x or y as model.fit takes them: a tensor, or (beyond tfjs) nested number arrays or a typed array. */
export type TensorLike = tf.Tensor | tf.TensorLike;

/** What fit trains and validates on, whichever form it was called in; `dispose` frees what fit created. */
export interface FitInputs {
  data: DataSource;
  validation?: DataSource;
  options: ParsedFitOptions;
  /** fit(x, y, ...) rather than fit(data, ...). */
  modelForm: boolean;
  /** The options the caller gave (not defaulted): a batched dataset's own batching yields to them. */
  given: { batchSize: boolean; shuffle: boolean };
  /** Lines for fit's logger about options taken and ignored, as tfjs ignores them. */
  notes: FitNote[];
  dispose(): void;
}

export interface FitNote {
  level: 'info' | 'warn';
  message: string;
}

export function isDataSource(v: unknown): v is DataSource {
  return typeof v === 'object' && v !== null && typeof (v as DataSource).batches === 'function';
}

/**
 * Sorts out fit's two forms: `fit(data, options)` (a tapfit data source) and
 * `fit(x, y, options)` (model.fit's). `validationSplit` holds out the last fraction of the
 * samples before any shuffling, as model.fit does; `validationData` is a data source or
 * `[x, y]`. Nothing is created on failure.
 */
export function fitInputs(a: unknown, b: unknown, c: unknown): FitInputs {
  const modelForm = !isDataSource(a);
  if (!modelForm && b !== undefined && (isTensorLike(b) || isDataSource(b))) {
    throw new TapfitError(ErrorCodes.CONFIG, 'fit: called as fit(data, y, ...); with a data source the labels are inside it: call fit(data, options), or fit(x, y, options) with tensors.');
  }
  refuseUnsupportedFitOptions(modelForm ? c : b);
  const raw = (modelForm ? c : b) as { batchSize?: unknown; shuffle?: unknown } | undefined;
  const parsed = parseOptions('fit', fitOptionsSchema, raw);
  const given = { batchSize: raw?.batchSize !== undefined, shuffle: raw?.shuffle !== undefined };
  const { options, notes } = ignoredOptions(parsed);
  if (modelForm && options.batchesPerEpoch !== undefined) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      "fit: option 'batchesPerEpoch' is model.fitDataset's, for a dataset read on across epochs; fit(x, y) makes each epoch one pass over x, as model.fit does. " +
        'For a dataset pass fit(datasetData(ds, { batched: true }), { batchesPerEpoch }); to end epochs after fewer batches of x, fit a slice of it.',
    );
  }
  if (modelForm) checkTensorArguments(a, b);
  const created: Array<{ dispose(): void }> = [];
  try {
    let data: DataSource = modelForm ? toData(a as TensorLike, b as TensorLike, created) : (a as DataSource);
    let validation: DataSource | undefined;
    if (options.validationData !== undefined) {
      validation = toValidation(options.validationData, created);
    } else if (options.validationSplit !== undefined) {
      if (!(data instanceof TensorData)) {
        throw new TapfitError(
          ErrorCodes.CONFIG,
          'fit: validationSplit needs in-memory data (tensors, arrays, tensorData or arrayData) to split; for a dataset pass validationData instead.',
        );
      }
      const splitAt = Math.floor(data.size * (1 - options.validationSplit));
      if (splitAt < 1 || splitAt >= data.size) {
        throw new TapfitError(ErrorCodes.CONFIG, `fit: validationSplit ${options.validationSplit} of ${data.size} samples leaves ${splitAt} for training and ${data.size - splitAt} for validation; both need at least one.`);
      }
      const whole = data;
      data = track(whole.range(0, splitAt), created);
      validation = track(whole.range(splitAt, whole.size), created);
    }
    return { data, validation, options, modelForm, given, notes, dispose: () => created.forEach((d) => d.dispose()) };
  } catch (err) {
    created.forEach((d) => d.dispose());
    throw err;
  }
}

/**
 * Options tfjs takes and does nothing with here, dropped with a line saying so (a tfjs
 * program keeps running, as it did): `yieldEvery` (fit has its own rule) and
 * `validationBatches` without a validation data source (model.fitDataset ignores it with
 * `[x, y]` validation or none).
 */
function ignoredOptions(parsed: ParsedFitOptions): { options: ParsedFitOptions; notes: FitNote[] } {
  const { yieldEvery, validationBatches, ...options } = parsed;
  const notes: FitNote[] = [];
  if (yieldEvery !== undefined) {
    notes.push({ level: 'info', message: `fit: option 'yieldEvery' (${JSON.stringify(yieldEvery)}) is ignored: fit lets the event loop turn once a second between steps, whatever it says.` });
  }
  if (validationBatches === undefined) return { options, notes };
  if (isDataSource(parsed.validationData)) return { options: { ...options, validationBatches }, notes };
  const why =
    parsed.validationData === undefined && parsed.validationSplit === undefined
      ? 'no validationData was given'
      : `it limits a validation dataset (validationData: datasetData(valDs, { batched: true })), as model.fitDataset applies it; validation on ${parsed.validationData === undefined ? 'validationSplit' : '[x, y]'} runs over all of it, as model.fitDataset's does`;
  notes.push({ level: 'warn', message: `fit: option 'validationBatches' is ignored: ${why}.` });
  return { options, notes };
}

/** fit's options as the loop runs them: `ownBatches` reads a batched source's batches as they come. */
export type FitRunOptions = ParsedFitOptions & { ownBatches?: boolean };

/**
 * model.fitDataset's batching for a source that comes in batches (a dataset batched for it):
 * its batches as they come (the first one's size is fit's batchSize), in its order, where
 * fit was not given `batchSize` or `shuffle` (fitDataset takes neither: the dataset decides
 * both). Given either, the source re-batches as told.
 */
export async function withOwnBatching(inputs: Pick<FitInputs, 'data' | 'options' | 'given'>): Promise<FitRunOptions> {
  const asTheyCome = !inputs.given.batchSize && !inputs.given.shuffle;
  // Opened as model.fitDataset opens it, so a ds.shuffle gives the same orders (see openUnreadAsFitDataset).
  if (asTheyCome && inputs.options.batchesPerEpoch === undefined && inputs.data instanceof DatasetData) await inputs.data.openUnreadAsFitDataset();
  const own = await inputs.data.ownBatchSize?.();
  if (own === undefined) return inputs.options;
  return {
    ...inputs.options,
    ...(inputs.given.batchSize ? {} : { batchSize: own }),
    ...(inputs.given.shuffle ? {} : { shuffle: false }),
    ownBatches: asTheyCome,
  };
}

/** evaluate(x, y, options) / predict(x, options): model.evaluate's / model.predict's options. */
export function inferenceOptions(who: 'evaluate' | 'predict', options: unknown): { batchSize: number } {
  return parseOptions(who, inferenceOptionsSchema, options);
}

/** A tensor as is, or a new one from arrays (the caller disposes a tensor it did not pass). */
export function toTensor(v: TensorLike, what: string): tf.Tensor {
  if (v instanceof tf.Tensor) return v;
  if (isTfDataset(v) && what.startsWith('evaluate')) throw datasetAdvice(what, 'await trainer.evaluate(datasetData(ds, { batched: true })), which returns { loss, ...metrics } as numbers,');
  refuseTensorList(v, what);
  if (!isTensorLike(v)) throw new TapfitError(ErrorCodes.CONFIG, `${what} must be a tensor or an array of numbers, got ${describe(v)}.`);
  return tf.tensor(v as tf.TensorLike);
}

/** model.fit's list of tensors, one per input or output: tapfit's models have one of each. */
function refuseTensorList(v: unknown, what: string): void {
  if (!Array.isArray(v) || !v.some((e) => e instanceof tf.Tensor)) return;
  const fix = v.length === 1 ? 'pass the tensor itself, not a list of one' : 'for a model with several inputs or outputs use model.fit';
  throw new TapfitError(
    ErrorCodes.CONFIG,
    `${what} is a list of ${v.length} tensor(s); tapfit trains models with one input and one output, so x and y are one tensor each: ${fix}.`,
  );
}

function isTensorLike(v: unknown): boolean {
  return v instanceof tf.Tensor || Array.isArray(v) || ArrayBuffer.isView(v);
}

/** A tf.data.Dataset (what model.fitDataset / evaluateDataset take), recognised to name datasetData. */
export function isTfDataset(v: unknown): boolean {
  return v instanceof tf.data.Dataset || (typeof v === 'object' && v !== null && typeof (v as { iterator?: unknown }).iterator === 'function' && typeof (v as { batch?: unknown }).batch === 'function');
}

/** What to say for a tf.data.Dataset where a tensor or a data source was expected. */
function datasetAdvice(who: string, form: string): TapfitError {
  return new TapfitError(
    ErrorCodes.CONFIG,
    `${who} is a tf.data.Dataset; wrap it in a data source: ${form} for a dataset batched as model.fitDataset takes it (ds.batch(n)), or datasetData(ds) for an unbatched one.`,
  );
}

function checkTensorArguments(x: unknown, y: unknown): void {
  if (isTfDataset(x)) throw datasetAdvice('fit: x', 'fit(datasetData(ds, { batched: true }), { epochs, ... })');
  for (const [v, name] of [[x, 'x'], [y, 'y']] as const) {
    if (isTensorLike(v)) continue;
    const several = typeof v === 'object' && v !== null ? ' (one input and one output: models with several are not supported)' : '';
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `fit: ${name} must be a tensor or an array of numbers, got ${describe(v)}${several}. Call fit(x, y, { epochs, batchSize, ... }) as model.fit, or fit(tensorData(x, y), { epochs, ... }).`,
    );
  }
}

/**
 * Training data from x, y: the caller's tensors are used (not disposed); arrays become a source fit owns (host copies, as arrayData's).
 * model.fit's lists of tensors are refused first, whatever the other side is (arrayData would call them bad arrays).
 */
function toData(x: TensorLike, y: TensorLike, created: Array<{ dispose(): void }>, names = { x: 'fit: x', y: 'fit: y' }): DataSource {
  refuseTensorList(x, names.x);
  refuseTensorList(y, names.y);
  if (!(x instanceof tf.Tensor) && !(y instanceof tf.Tensor)) return track(arrayData({ x: x as ArrayLike<number>, y: y as ArrayLike<number> }), created);
  const xs = x instanceof tf.Tensor ? x : track(toTensor(x, names.x), created);
  const ys = y instanceof tf.Tensor ? y : track(labelsTensor(y, names.y), created);
  return new TensorData(xs, ys);
}

/**
 * Labels as fit and evaluate read them: a tensor as is; a flat array of whole numbers is
 * class indices (int32), as arrayData reads labels; anything else float32 (the caller
 * disposes a tensor it did not pass).
 */
export function labelsTensor(y: TensorLike, what: string): tf.Tensor {
  if (y instanceof tf.Tensor) return y;
  const flat = ArrayBuffer.isView(y) || (Array.isArray(y) && !Array.isArray(y[0]));
  if (flat && allWholeNumbers(y as ArrayLike<number>)) return tf.tensor1d(y as ArrayLike<number> as Float32Array, 'int32');
  return toTensor(y, what);
}

function toValidation(v: unknown, created: Array<{ dispose(): void }>): DataSource {
  if (isDataSource(v)) return v;
  if (isTfDataset(v)) throw datasetAdvice('fit: validationData', 'validationData: datasetData(valDs, { batched: true })');
  if (Array.isArray(v) && v.length === 2 && isTensorLike(v[0]) && isTensorLike(v[1])) {
    return toData(v[0] as TensorLike, v[1] as TensorLike, created, { x: "fit: validationData's x", y: "fit: validationData's y" });
  }
  throw new TapfitError(
    ErrorCodes.CONFIG,
    `fit: validationData must be [x, y] (tensors or arrays, as model.fit takes it) or a data source such as tensorData(x, y), got ${describe(v)}.`,
  );
}

function track<T extends { dispose(): void }>(t: T, created: Array<{ dispose(): void }>): T {
  created.push(t);
  return t;
}

function describe(v: unknown): string {
  if (v === undefined || v === null) return String(v);
  if (Array.isArray(v)) return `an array of ${v.length}`;
  if (typeof v === 'object') return `an object with keys ${Object.keys(v).slice(0, 5).join(', ') || '(none)'}`;
  return `${typeof v} ${String(v)}`;
}
