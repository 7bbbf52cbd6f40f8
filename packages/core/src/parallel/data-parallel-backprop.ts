import * as tf from '@tensorflow/tfjs';
import { describeActiveBackend } from '../backend/select';
import { ErrorCodes, TapfitError } from '../errors';
import { PlannedBackprop } from '../memory/planned-backprop';
import type { Segment } from '../model/segment';
import type { Backprop } from '../services/tokens';
import type { StepGradients, StepRequest } from '../step/step-request';
import type { NamedTensors } from '../tensors';
import type { Replica, ReplicaResult } from './replica';
import type { ReplicaGroup } from './replica-group';
import { DATA_PARALLEL_PLUGIN } from './replicable';
import { hostValues, scaledSumWithHost, tensorOfHost } from './host-copy';
import { noiseKey } from '../model/noise-seed';
import { partSizes, partWeights } from './split';
import { namePlugins } from './worker-loss';

/** How far the whole batch's loss may be from the parts' weighted mean (float32 sums in another order) before the loss is refused as not a batch mean. */
const LOSS_TOLERANCE = 1e-4;

/**
 * Core's Backprop split across replicas: the batch is cut into parts, the worker replicas
 * compute theirs while the main thread computes its own with core's default backprop, and
 * the gradients are combined as the whole batch's, sum_k (n_k / n) g_k (the loss is a batch
 * mean). The whole batch's loss is then evaluated once on the joined predictions: it is the
 * value returned (fit's metrics are computed on it, on the whole batch). On the first split
 * step and each fit's first it is also compared with the parts' losses, which checks that
 * the loss really is the batch mean each replica computes (classWeight is not); the other
 * steps read nothing back.
 */
export class DataParallelBackprop implements Backprop {
  // The main thread's part runs core's planned backprop; the workers store every activation of theirs.
  readonly realisesMemoryPlan = true;
  readonly memoryPlanScope = "the main thread's part of each batch (the replica workers store all their activations)";
  private readonly local = new PlannedBackprop();
  private group?: ReplicaGroup;
  /** The model's own segments, set with the group: a step whose forward differs was changed by a forward tap. */
  private segments: readonly Segment[] = [];
  /** Why steps are refused now (a replica failed, or the trainer was disposed). */
  private refusal?: TapfitError;
  /** Whether the next split step checks that the loss is a batch mean: the first after setup, and each fit's first (classWeight is a fit's). */
  private checkLoss = true;

  constructor(
    private readonly replicas: number,
    private readonly workerBackend: 'wasm' | 'cpu',
    private readonly stepTimeoutMs: number,
    /** The other plugins of the trainer, named when a forward tap changed the step. */
    private readonly others: () => readonly string[],
    /** The plugins that decorated the trainer's loss, named when the loss is not the parts' mean. */
    private readonly lossDecorators: () => readonly string[],
  ) {}

  get description(): string {
    const main = describeActiveBackend();
    const workers = `${this.replicas - 1} worker${this.replicas > 2 ? 's' : ''}`;
    if (this.workerBackend === 'wasm' && /^wasm, 1 thread\b/.test(main)) return `data parallel, ${this.replicas} replicas (1 wasm thread each)`;
    return `data parallel, ${this.replicas} replicas (main thread: ${main}; ${workers}: ${this.workerBackend}, 1 thread each)`;
  }

  /** Uses `group` from now on (setup); stops the one before. */
  attach(group: ReplicaGroup, segments: readonly Segment[]): void {
    void this.group?.stop();
    this.group = group;
    this.segments = segments;
    this.refusal = undefined;
    this.checkLoss = true;
  }

  /** Forgets the trainer before (applied to a new one): no workers until its setup. */
  detach(): void {
    void this.group?.stop();
    this.group = undefined;
    this.segments = [];
    this.refusal = undefined;
  }

  /** The next split step checks the loss again (a fit starts: its classWeight may change it). */
  checkLossNextStep(): void {
    this.checkLoss = true;
  }

  /** Stops the workers; later steps are refused with `why`. */
  stop(why: TapfitError): Promise<void> {
    this.refusal ??= why;
    return this.group?.stop() ?? Promise.resolve();
  }

  compute(request: StepRequest): StepGradients {
    if (this.refusal) throw this.refusal;
    const group = this.group;
    if (!group) throw new TapfitError(ErrorCodes.STATE, `${DATA_PARALLEL_PLUGIN}: the replicas are not started; call trainer.setup() (fit does) first.`);
    this.checkForward(request);
    const n = request.x.shape[0];
    // A batch smaller than the replicas (an epoch's last, say) runs whole on the main thread: the same math.
    if (n < this.replicas) return this.local.compute(request);
    const sizes = partSizes(n, this.replicas);
    const shares = partWeights(sizes);
    const step = request.ctx.step;
    const sent = this.dispatch(group, request, sizes);
    let own: { gradients: StepGradients; pred: tf.Tensor };
    try {
      own = this.computeOwnPart(request, sizes[0]);
    } catch (err) {
      // The workers are mid-step: let them finish before the next one (their answers are dropped; a failure among them stops them).
      try {
        this.collect(sent, step);
      } catch {
        // the main thread's own error says more
      }
      throw err;
    }
    try {
      const answers = this.collect(sent, step);
      const grads = combine(request.variables, own.gradients, answers, shares, group);
      const whole = tf.concat([own.pred, ...answers.map((a) => tf.tensor(a.pred, a.predShape))]);
      // Called last on the whole batch: the step's value, and fit's metrics are the whole batch's.
      const value = request.loss(request.y, whole);
      if (this.checkLoss) {
        checkBatchMean(value, [own.gradients.value.dataSync()[0]!, ...answers.map((a) => a.loss)], shares, this.lossDecorators());
        this.checkLoss = false;
      }
      return { value, grads };
    } finally {
      own.pred.dispose();
    }
  }

  /** Publishes the weights and hands each worker its rows (after the main thread's `sizes[0]`); returns the replicas signalled. */
  private dispatch(group: ReplicaGroup, request: StepRequest, sizes: readonly number[]): Replica[] {
    group.publish(request.variables);
    // No tensor op until the rows are sent: on wasm x and y are views of the heap, which an allocation may move.
    const x = batchPart(request.x, 'x');
    const y = batchPart(request.y, 'y');
    const key = request.ctx.noiseKey ?? noiseKey(0, request.ctx.step); // what noiseSeed reads when the context has none
    let from = sizes[0];
    return group.replicas.map((r, k) => {
      try {
        r.send({ step: request.ctx.step, noiseKey: key, x, y, from, rows: sizes[k + 1] });
      } catch (err) {
        void this.stop(err as TapfitError); // a replica lost between steps: the ones already signalled are stopped with it
        throw err;
      }
      from += sizes[k + 1];
      return r;
    });
  }

  /** The main thread's part (the first `rows` samples) with core's default backprop, and its predictions (kept: the caller disposes them). */
  private computeOwnPart(request: StepRequest, rows: number): { gradients: StepGradients; pred: tf.Tensor } {
    let pred: tf.Tensor | undefined;
    try {
      const gradients = this.local.compute({
        ...request,
        x: tf.slice(request.x, 0, rows),
        y: tf.slice(request.y, 0, rows),
        // The whole batch's loss is evaluated on every part's predictions at the end.
        loss: (yTrue, yPred) => {
          pred?.dispose();
          pred = tf.keep(tf.cast(yPred, 'float32'));
          return request.loss(yTrue, yPred);
        },
      });
      if (!pred) throw new TapfitError(ErrorCodes.STATE, `${DATA_PARALLEL_PLUGIN}: the main thread's backprop never called the loss.`);
      return { gradients, pred };
    } catch (err) {
      pred?.dispose();
      throw err;
    }
  }

  /** Every replica's answer; the first failure stops them all and is thrown (after all have answered or failed). */
  private collect(replicas: readonly Replica[], step: number): ReplicaResult[] {
    const answers: ReplicaResult[] = [];
    let failure: TapfitError | undefined;
    for (const r of replicas) {
      try {
        answers.push(r.receive(step, this.stepTimeoutMs));
      } catch (err) {
        failure ??= err as TapfitError;
      }
    }
    if (failure) {
      void this.stop(failure);
      throw failure;
    }
    return answers;
  }

  /** Refuses a step whose forward a plugin's forward tap changed: the replicas run the model's own layers. */
  private checkForward(request: StepRequest): void {
    const { segments, ctx } = request;
    const same = segments.length === this.segments.length && segments.every((s, i) => s === this.segments[i]);
    if (same && !ctx.weights && ctx.training && !ctx.recomputing) return;
    const others = this.others();
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${DATA_PARALLEL_PLUGIN}: a forward tap${others.length ? ` (of plugin ${others.map((p) => `'${p}'`).join(', ')})` : ''} changed the step's forward (${same ? 'its context: substituted weights or flags' : 'wrapped or replaced segments'}), ` +
        'which the replica workers, running the model rebuilt from its layers, would not run. Train without dataParallel, or without that plugin.',
    );
  }
}

type Part = { data: Float32Array | Int32Array; rowShape: number[]; dtype: 'float32' | 'int32' };

/** The batch's values on the host, to copy the replicas' rows from (on wasm a view of the heap, not a copy). */
function batchPart(t: tf.Tensor, what: 'x' | 'y'): Part {
  if (t.dtype !== 'float32' && t.dtype !== 'int32') {
    throw new TapfitError(ErrorCodes.CONFIG, `${DATA_PARALLEL_PLUGIN}: the batch's ${what} is ${t.dtype}; the replicas take float32 or int32. Cast it (tf.cast(${what}, 'float32')).`);
  }
  return { data: hostValues(t), rowShape: t.shape.slice(1), dtype: t.dtype };
}

/** The whole batch's gradients: sum_k share_k g_k over the parts that have one (a variable with none anywhere stays absent). */
function combine(variables: readonly tf.Variable[], own: StepGradients, answers: readonly ReplicaResult[], shares: readonly number[], group: ReplicaGroup): NamedTensors {
  const grads: NamedTensors = {};
  const index = new Map(group.layout.variables.map((v, i) => [v, i]));
  for (const v of variables) {
    const i = index.get(v)!;
    // sum times `scale` is the combination so far: the factor waits for the next part, to go into one fused a x + b y pass.
    let sum: tf.Tensor | undefined = own.grads[v.name];
    let scale = shares[0]!;
    answers.forEach((a, k) => {
      if (a.written[i] !== 1) return;
      const theirs = group.layout.view(a.grads, i);
      if (sum) {
        sum = scaledSumWithHost(sum, scale, theirs, shares[k + 1]!);
        scale = 1;
      } else {
        sum = tensorOfHost(theirs, v.shape);
        scale = shares[k + 1]!;
      }
    });
    if (sum) grads[v.name] = scale === 1 ? sum : tf.mul(sum, scale);
  }
  return grads;
}

/** Refuses a loss that is not the mean over the batch each replica computes: the split would change the gradient. */
function checkBatchMean(value: tf.Scalar, partLosses: readonly number[], shares: readonly number[], lossDecorators: readonly string[]): void {
  const whole = value.dataSync()[0];
  const mean = partLosses.reduce((sum, l, k) => sum + shares[k] * l, 0);
  if (!Number.isFinite(whole) || !Number.isFinite(mean)) return; // the trainer's non-finite guard handles it
  if (Math.abs(whole - mean) <= LOSS_TOLERANCE * Math.max(1, Math.abs(whole))) return;
  const problem =
    `${DATA_PARALLEL_PLUGIN}: the step's loss on the whole batch (${whole}) is not the samples-weighted mean of the replicas' losses on their parts (${mean}), so the combined gradient would not be the whole batch's. ` +
    'dataParallel needs a loss that is a mean over the batch, computed alike on every replica: ';
  // A decorated loss excludes classWeight (fit refuses the pair), so the decoration is the likely cause.
  if (lossDecorators.length) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      problem +
        `${namePlugins(lossDecorators)} decorated the trainer's loss, which the main thread computes, while the replica workers compute setupModule's \`loss\`; they differ (or the decorated loss sums over the batch). ` +
        "No update was applied; export the decorated loss itself as setupModule's `loss`, or train without dataParallel or without that plugin.",
    );
  }
  throw new TapfitError(
    ErrorCodes.CONFIG,
    problem +
      "fit's classWeight, a loss that sums over the batch, or a setupModule `loss` other than the trainer's break that. No update was applied; train without dataParallel, or drop classWeight.",
  );
}
