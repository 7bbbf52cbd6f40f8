import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { ResolvedDataParallelOptions } from './options';
import { withAlphaDropoutNoiseShapes } from './alpha-dropout-noise-shapes';
import { copyValues } from './host-copy';
import { Replica } from './replica';
import { DATA_PARALLEL_PLUGIN } from './replicable';
import { WeightLayout } from './weight-layout';
import { namePlugins } from './worker-loss';

/**
 * The worker replicas of one model and the memory they share with the main thread: the
 * model's weights (all of them, trainable or not, written once per step for every worker)
 * and which of them train this step. Allocated once per model.
 */
export class ReplicaGroup {
  private readonly weights: Float32Array;
  private readonly wanted: Int32Array;
  private readonly indexOf: Map<tf.Variable, number>;
  private stopping?: Promise<void>;

  private constructor(
    readonly layout: WeightLayout,
    weights: SharedArrayBuffer,
    wanted: SharedArrayBuffer,
    readonly replicas: readonly Replica[],
  ) {
    this.weights = new Float32Array(weights);
    this.wanted = new Int32Array(wanted);
    this.indexOf = new Map(layout.variables.map((v, i) => [v, i]));
  }

  /** Starts replicas 1..N-1 of `model` (each builds its copy from the JSON topology); rejects naming the replica that failed, with every worker stopped. */
  static async start(model: tf.LayersModel, o: ResolvedDataParallelOptions, loss: string | undefined, lossDecorators: readonly string[]): Promise<ReplicaGroup> {
    const layout = new WeightLayout([...new Set(model.weights.map((w) => w.read() as tf.Variable))]);
    const weights = new SharedArrayBuffer(layout.total * 4);
    const wanted = new SharedArrayBuffer(layout.variables.length * 4);
    const topology = withAlphaDropoutNoiseShapes(model.toJSON(null, false), model);
    const started = await Promise.allSettled(
      Array.from({ length: o.replicas - 1 }, (_, k) =>
        Replica.start({ replica: k + 1, replicas: o.replicas, topology, loss, setupModule: o.setupModule, backend: o.backend, weights, wanted }, layout.variables.length, layout.total, o.startTimeoutMs),
      ),
    );
    const replicas = started.flatMap((s) => (s.status === 'fulfilled' ? [s.value.replica] : []));
    try {
      const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) throw failed.reason;
      for (const s of started) {
        const { replica, ready } = (s as PromiseFulfilledResult<Awaited<ReturnType<typeof Replica.start>>>).value;
        const mine = layout.variables.map((v) => v.shape.join(','));
        if (ready.shapes.length !== mine.length || ready.shapes.some((shape, i) => shape.join(',') !== mine[i])) {
          throw new TapfitError(
            ErrorCodes.CONFIG,
            `${DATA_PARALLEL_PLUGIN}: replica ${replica.index} built a model whose weights [${ready.shapes.map((s) => `[${s}]`).join(', ')}] differ from the main thread's [${layout.variables.map((v) => `[${v.shape}]`).join(', ')}]; does setupModule register the same layer classes the main thread uses?`,
          );
        }
        if (!ready.hasLoss) {
          throw new TapfitError(
            lossDecorators.length ? ErrorCodes.PLUGIN_CONFLICTS : ErrorCodes.CONFIG,
            lossDecorators.length
              ? `${DATA_PARALLEL_PLUGIN}: ${namePlugins(lossDecorators)} decorated the trainer's loss, a function, which cannot cross threads, and setupModule exports no \`loss\`. Export the decorated loss as \`loss\` from setupModule (every replica then computes it), or train without dataParallel or without that plugin.`
              : `${DATA_PARALLEL_PLUGIN}: the trainer's loss is a function, which cannot cross threads, and setupModule exports no \`loss\`. Export the same loss function as \`loss\` from setupModule, or pass a core loss name (e.g. 'softmaxCrossEntropy').`,
          );
        }
      }
    } catch (err) {
      await Promise.all(replicas.map((r) => r.terminate()));
      throw err;
    }
    return new ReplicaGroup(layout, weights, wanted, replicas);
  }

  /** Writes every weight's current value, and which of them `variables` (this step's) asks gradients for. */
  publish(variables: readonly tf.Variable[]): void {
    this.wanted.fill(0);
    for (const v of variables) {
      const i = this.indexOf.get(v);
      if (i === undefined) {
        throw new TapfitError(
          ErrorCodes.STATE,
          `${DATA_PARALLEL_PLUGIN}: the step trains variable '${v.name}', which is not a weight of the model the replicas were built from. A plugin swapped the model's variables after setup; train without dataParallel.`,
        );
      }
      this.wanted[i] = 1;
    }
    this.layout.variables.forEach((v, i) => copyValues(v, this.layout.view(this.weights, i)));
  }

  /** Terminates every worker (once). */
  stop(): Promise<void> {
    this.stopping ??= Promise.all(this.replicas.map((r) => r.terminate())).then(() => undefined);
    return this.stopping;
  }
}
