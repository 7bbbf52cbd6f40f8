import * as tf from '@tensorflow/tfjs';
import { ConsoleLogger, ErrorCodes, isModelTraining, layersConstraints, markModelTraining, parseOptions, TapfitError } from '@tapfit/core';
import { AsyncRun, type AsyncTrainStats } from './async-run';
import { asyncTrainSchema, type AsyncTrainOptions } from './options';
import { shardOf, shareData } from './shared-data';

/**
 * Asynchronous SGD with real workers: K worker_threads, each with its own TF.js, pull
 * the current weights and push back a gradient on their own batch; the main thread
 * applies every gradient as it arrives with `optimizer` (so a gradient is typically
 * computed on weights K-1 updates old) and sends that worker the new weights.
 *
 * Guarantees: each gradient is applied at most once (request ids); exactly `steps`
 * updates are applied unless every worker fails; a worker that crashes, exits or hangs
 * (timeoutMs) is stopped, reported in `stats.workers[i].failure` and training goes on
 * with the rest; all workers are terminated before the promise settles. If every worker
 * fails first, it rejects with an AsyncTrainError carrying the stats (the model keeps
 * the updates applied so far). The staleness of every applied gradient is recorded.
 *
 * Non-trainable weights (BatchNorm moving statistics) are updated like the weights: each
 * request carries the master's values, the worker's training-mode forward pass moves them
 * with its batch, and when its gradient is applied the master adds that change to its own
 * values. So every applied batch counts once; with staleness s the change was computed
 * from values s updates old (for a moving average with momentum m, m_new = m_now +
 * (1 - m)(batch - m_sent) instead of m_now + (1 - m)(batch - m_now)).
 *
 * One run trains a model at a time: while it runs, the model carries model.fit's
 * training flag, so another asyncTrain, model.fit or a Trainer's fit on it is refused
 * (`TAPFIT_E_STATE`), and asyncTrain refuses a model one of those trains.
 */
export async function asyncTrain(options: AsyncTrainOptions): Promise<AsyncTrainStats> {
  const o = parseOptions('asyncTrain', asyncTrainSchema, options);
  const { model } = o;
  const samples = o.data.x.shape[0];
  const smallest = Math.floor(samples / o.workers);
  if (smallest < o.batchSize) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `asyncTrain: ${samples} samples give each of ${o.workers} workers at least ${smallest}, fewer than batchSize ${o.batchSize}. Use more data, fewer workers or a smaller batchSize.`,
    );
  }
  if (isModelTraining(model)) {
    throw new TapfitError(
      ErrorCodes.STATE,
      'asyncTrain: the model is being trained already (by another asyncTrain, model.fit or a Trainer on the same model); ' +
        "two runs would interleave their updates and each report staleness without the other's. Await that run first, or train a separate copy of the model.",
    );
  }
  markModelTraining(model, true);
  try {
    const transforms = Array.isArray(o.optimizer) ? o.optimizer : [o.optimizer];
    const variables = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const data = shareData(o.data);
    const constrain = o.constraints === 'apply' ? layersConstraints(model) : null;
    const run = new AsyncRun(o, variables, model.nonTrainableWeights, transforms, constrain, o.logger ?? new ConsoleLogger());
    return await run.start((index) => ({
      index,
      topology: model.toJSON(null, false) as object,
      loss: o.loss,
      setupModule: o.setupModule,
      backend: o.backend,
      data,
      shard: shardOf(index, o.workers, samples),
      batchSize: o.batchSize,
      seed: o.seed,
      workers: o.workers,
    }));
  } finally {
    markModelTraining(model, false);
  }
}
