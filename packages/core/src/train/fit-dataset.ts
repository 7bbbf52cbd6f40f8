import type * as tf from '@tensorflow/tfjs';
import type { DataSource } from '../data/data-source';
import { datasetData } from '../data/dataset-data';
import { ErrorCodes, TapfitError } from '../errors';
import { isDataSource, isTfDataset, type TensorLike } from './fit-inputs';
import type { FitOptions } from './options';

/**
 * `fitDataset`'s options: model.fitDataset's (tfjs-layers 4.22's ModelFitDatasetArgs) as fit
 * takes them. `validationData` is a batched dataset, `[x, y]`, or a tapfit data source.
 * fit's batchSize, shuffle and validationSplit are not among them: the dataset decides the
 * batches and their order, as it does for model.fitDataset.
 */
export type FitDatasetOptions = Omit<FitOptions, 'batchSize' | 'shuffle' | 'validationSplit' | 'validationData'> & {
  // tfjs's own type is in the union so that a `tf.ModelFitDatasetArgs` variable compiles; its multi-input forms are refused at run time.
  validationData?: tf.data.Dataset<tf.TensorContainer> | readonly [TensorLike, TensorLike] | DataSource | tf.ModelFitDatasetArgs<tf.TensorContainer>['validationData'] | undefined;
};

/** fit's options that model.fitDataset does not have, each with what to do instead. */
const notFitDatasetOptions: Readonly<Record<string, string>> = {
  batchSize: 'the dataset\'s own batches are trained on, as model.fitDataset does (ds.batch(n) sets their size); to re-batch, call fit(datasetData(ds, { batched: true }), { batchSize })',
  shuffle: 'the batches come in the dataset\'s order, as model.fitDataset takes them (shuffle the dataset with ds.shuffle(n) before .batch(n)); to shuffle samples across batches, call fit(datasetData(ds, { batched: true }), { shuffle: true })',
  validationSplit: 'model.fitDataset does not take it either: pass validationData (a batched validation dataset or [x, y])',
};

/**
 * What `fitDataset(dataset, options)` hands to fit: the dataset as a batched data source,
 * a validation dataset likewise, and model.fitDataset's default verbosity (1). What fit
 * itself refuses is left to fit, so both say the same.
 */
export function fitDatasetArguments(dataset: unknown, options: unknown): { data: DataSource; options: FitOptions } {
  if (isDataSource(dataset)) {
    throw new TapfitError(ErrorCodes.CONFIG, 'fitDataset: got a tapfit data source; fitDataset takes a tf.data.Dataset, as model.fitDataset does. Train on a data source with fit(data, options).');
  }
  if (!isTfDataset(dataset)) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      'fitDataset: the first argument must be a tf.data.Dataset of batches { xs, ys } (ds.batch(n)), as model.fitDataset takes it. For tensors or arrays call fit(x, y, options).',
    );
  }
  const given = (options ?? {}) as Record<string, unknown>;
  if (typeof given !== 'object') throw new TapfitError(ErrorCodes.CONFIG, `fitDataset: options must be an object such as { epochs: 10 }, got ${typeof given}.`);
  const refused = Object.keys(notFitDatasetOptions).filter((k) => Object.hasOwn(given, k));
  if (refused.length) {
    throw new TapfitError(ErrorCodes.CONFIG, `fitDataset: ${refused.map((k) => `option '${k}' is not model.fitDataset's: ${notFitDatasetOptions[k]}`).join('; ')}.`);
  }
  const { validationData, ...rest } = given;
  const validation = isTfDataset(validationData) ? batchedData(validationData as tf.data.Dataset<tf.TensorContainer>) : validationData;
  return {
    data: batchedData(dataset as tf.data.Dataset<tf.TensorContainer>),
    options: { ...rest, verbose: (given.verbose as FitOptions['verbose']) ?? 1, ...(validation === undefined ? {} : { validationData: validation as FitOptions['validationData'] }) },
  };
}

/** A batched dataset as a data source; `[xs, ys]` pairs (tf.data.zip of two datasets) are read as `{ xs, ys }`. */
function batchedData(ds: tf.data.Dataset<tf.TensorContainer>): DataSource {
  const asXsYs = ds.map((e) => (Array.isArray(e) && e.length === 2 ? { xs: e[0], ys: e[1] } : e) as tf.TensorContainer);
  return datasetData(asXsYs, { batched: true });
}
