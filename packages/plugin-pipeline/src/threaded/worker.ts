// One pipeline stage in its own thread with its own TF.js: forward of micro-batch t at
// the weights of D updates ago (or their prediction), backward of t at the current
// weights with the stashed input, update as soon as the gradient is there. The same
// rules and the same functions as the one-process simulator (../simulator.ts).
import * as tf from '@tensorflow/tfjs';
import { parentPort, workerData } from 'node:worker_threads';
import { ChainStepper, fromLayersModel, importSetupModule, layersConstraints, noiseKey, penalizedLayers, rebuildLayersModelInWorker, resolveLoss, selectBackend, sgd, type LossFn, type LossName, type NamedTensors, type Segment, type StepTransform } from '@tapfit/core';
import { spikeCompensation } from '../spike-compensation';
import { runSegments, stageBackward, withWeights } from '../stage-math';
import { WeightHistory } from '../weight-history';
import type { FromStage, StageInit, StageStats, ToStage } from './protocol';
import { messagePortTransport, type StageLink, type StageMessage } from './transport';

const port = parentPort!;
const init = workerData as StageInit;
const send = (msg: FromStage, transfer: ArrayBuffer[] = []) => port.postMessage(msg, transfer);

interface Hooks {
  onSample?: (info: { stage: number; sample: number; phase: 'forward' | 'backward' }) => void;
}

async function start(): Promise<void> {
  tf.env().set('PROD', true);
  await selectBackend(init.backend, { log: false });
  let hooks: Hooks = {};
  let loss: LossFn = resolveLoss(init.loss as LossName);
  if (init.setupModule) {
    const mod = await importSetupModule<Hooks & { setup: (ctx: { stage: number }) => unknown; loss: LossFn }>(init.setupModule);
    await mod.setup?.({ stage: init.stage });
    if (typeof mod.loss === 'function') loss = mod.loss;
    hooks = mod;
  }
  const model = await rebuildModel();
  const { segments, variables } = stageParts(model);
  if (variables.length !== init.weights.length) throw new Error(`stage ${init.stage} has ${variables.length} trainable variables but was sent ${init.weights.length} initial values.`);
  variables.forEach((v, i) => v.assign(tf.tensor(init.weights[i], v.shape)));
  const warm = init.warmUp > 0 ? await warmUp(loss) : { passes: 0, ms: 0 };
  new Stage(segments, variables, loss, hooks, model, warm).listen();
  send({ type: 'ready' });
}

const rebuildModel = () => rebuildLayersModelInWorker(init.topology, { builder: "each stage's worker", setupOption: 'setupModule' });

/** This stage's segments of `model` and the trainable variables they read. */
function stageParts(model: tf.LayersModel): { segments: Segment[]; variables: tf.Variable[] } {
  const segments: Segment[] = fromLayersModel(model).segments.slice(init.start, init.end);
  const trainable = new Set(model.trainableWeights.map((w) => w.read() as tf.Variable));
  return { segments, variables: [...new Set(segments.flatMap((s) => s.params))].filter((v) => trainable.has(v)) };
}

/**
 * A new worker runs the engine, the tape and the stage's code as cold JavaScript: V8
 * optimises a function only after it has seen it run many times, so a fresh stage's first
 * samples ran at about half the speed of its 2,000th. The warm-up runs up to `warmUp`
 * passes (at most `warmUpMs`) of the run's own per-sample code during `start`: a
 * rehearsal Stage (below) over a throwaway copy of the stage's layers, with its own
 * optimizer state and history, fed zeros shaped as messages bring them: V8 threw away
 * much of what a warm-up through functions of its own had optimised once the real samples
 * came (measured with 2,000 passes: first rounds of 300 digits at 452-584 samples/s
 * against 322-446). The run's weights, optimizer state, layer state, dropout draws (keyed,
 * no generator state) and setupModule hooks are not touched.
 */
async function warmUp(loss: LossFn): Promise<{ passes: number; ms: number }> {
  const t0 = performance.now();
  // Built after the stage's model, so the stage's variables keep their names.
  const copy = await rebuildModel();
  const { segments, variables } = stageParts(copy);
  const rehearsal = new Stage(segments, variables, loss, {}, copy, { passes: 0, ms: 0 }, true);
  try {
    return { passes: rehearsal.rehearse(init.warmUp, init.warmUpMs), ms: performance.now() - t0 };
  } finally {
    rehearsal.dispose();
    copy.dispose();
  }
}

/** The stage's update chain: the optimizer's, with Spike Compensation for this stage's delay in place of momentum when asked. */
function stageTransforms(): StepTransform[] {
  const { lr, momentum, weightDecay } = init.optimizer;
  return sgd({ lr, momentum, weightDecay }).transforms.map((t): StepTransform => (t.name === 'momentum' && init.compensation === 'sc' ? spikeCompensation({ momentum, delay: init.delay }) : t));
}

class Stage {
  private readonly history?: WeightHistory;
  private readonly stepper: ChainStepper;
  private readonly byName: Record<string, tf.Variable>;
  private readonly last = init.stage === init.stages;
  private readonly up?: StageLink;
  private readonly down?: StageLink;
  private readonly forwards = new Map<number, { data: Float32Array; shape: number[] }>();
  private readonly backwards = new Map<number, tf.Tensor>();
  /** The later stages' weight penalties at each sample's update, as they arrive with the gradients. */
  private readonly laterPenalties = new Map<number, number>();
  /** Stage 1: the whole model's penalty per sample since the last 'done'. */
  private penalties: number[] = [];
  /** This stage's layers that declare weight penalties (regularizers). */
  private readonly penalized: tf.layers.Layer[];
  /** Projects this stage's updated weights that declare constraints, as the trainer does. */
  private readonly constrain: ((updated: NamedTensors) => void) | null;
  private readonly labels = new Map<number, tf.Tensor>();
  private readonly stash = new Map<number, tf.Tensor>();
  /** The last micro-batch of each input chunk (stage 1 reports 'done' there) and of each labels chunk (the last stage reports its losses there). */
  private readonly chunkEnds = new Set<number>();
  private readonly labelChunkEnds = new Set<number>();
  private losses: { sample: number; values: number[] } | null = null;
  private nextForward = 0;
  private nextBackward = 0;
  private updates = 0;
  private failed = false;
  private readonly stats: StageStats = { stage: init.stage, forwardMs: 0, backwardMs: 0, forwards: 0, backwards: 0, warmUpPasses: 0, warmUpMs: 0 };
  /** The sample being worked on (named when something fails). */
  private current: number | null = null;

  constructor(
    private readonly segments: Segment[],
    private readonly variables: tf.Variable[],
    private readonly loss: LossFn,
    private readonly hooks: Hooks,
    readonly model: tf.LayersModel,
    warm: { passes: number; ms: number },
    /** A rehearsal (the warm-up): it sends nothing, runs no hook, and answers its own forwards with zero gradients. */
    private readonly rehearsal = false,
  ) {
    this.stats.warmUpPasses = warm.passes;
    this.stats.warmUpMs = warm.ms;
    this.byName = Object.fromEntries(variables.map((v) => [v.name, v]));
    this.constrain = init.constraints === 'apply' ? layersConstraints(model) : null;
    const own = new Set<tf.Variable>(variables);
    this.penalized = penalizedLayers(model).filter((l) => l.trainableWeights.some((w) => own.has(w.read() as tf.Variable)));
    this.stepper = new ChainStepper(stageTransforms(), this.byName);
    if (init.delay > 0) {
      this.history = new WeightHistory(init.stage, init.delay, variables, init.prediction);
      this.record();
    }
    if (rehearsal) return;
    if (init.upstream) this.up = messagePortTransport.link(init.upstream);
    if (init.downstream) this.down = messagePortTransport.link(init.downstream);
  }

  /**
   * A rehearsal's passes: up to `passes` micro-batches of zeros through forward, backward,
   * update and history, as the run's would go, within `budgetMs` (a pass that has started
   * runs to its end). A last stage whose loss takes neither one-hot nor class-index labels
   * of zeros is not rehearsed. Returns the passes run.
   */
  rehearse(passes: number, budgetMs: number): number {
    const shape = [init.microBatch, ...init.inputShape];
    const size = tf.util.sizeFromShape(shape);
    const labels = this.last ? this.rehearsalLabels(shape) : undefined;
    if (labels === null) return 0;
    const t0 = performance.now();
    let t = 0;
    for (; t < passes && performance.now() - t0 < budgetMs; t++) {
      // structuredClone: a message's arrays reach the stage in V8's form for cloned arrays, not a literal's.
      this.forwards.set(t, { data: new Float32Array(size), shape: structuredClone(shape) });
      if (labels) this.labels.set(t, labels());
      this.pump();
    }
    return t;
  }

  /** Makes the last stage's rehearsal labels: one-hot class 0, else class indices 0, whichever its loss takes; null: neither. */
  private rehearsalLabels(shape: number[]): (() => tf.Tensor) | null {
    const ctx = { training: false, recomputing: false, step: 0 };
    const y = tf.tidy(() => runSegments(this.segments, [tf.zeros(shape)], ctx)[0]);
    const [batch, classes] = y.shape;
    const oneHot = new Float32Array(y.size);
    if (y.rank === 2) for (let i = 0; i < batch; i++) oneHot[i * classes!] = 1;
    const candidates = [() => tf.tensor(oneHot, structuredClone(y.shape)), () => tf.tensor(new Int32Array(batch), structuredClone([batch]), 'int32')];
    try {
      return candidates.find((make) => {
        try {
          tf.tidy(() => void this.loss(make(), y).dataSync());
          return true;
        } catch {
          return false;
        }
      }) ?? null;
    } finally {
      y.dispose();
    }
  }

  /** Frees the optimizer state, the history and what is held for samples in flight (a rehearsal's, after its passes). */
  dispose(): void {
    this.stepper.dispose();
    this.history?.dispose();
    tf.dispose([...this.stash.values(), ...this.backwards.values(), ...this.labels.values()]);
  }

  listen(): void {
    const guard = (fn: () => void, sample: number | null) => {
      if (this.failed) return;
      try {
        fn();
      } catch (err) {
        this.failed = true;
        send({ type: 'failed', stage: init.stage, sample: this.current ?? sample, error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
      }
    };
    this.up?.onMessage((m: StageMessage) => guard(() => (this.forwards.set(m.sample, m), this.pump()), m.sample));
    this.down?.onMessage((m: StageMessage) =>
      guard(() => {
        this.backwards.set(m.sample, tf.tensor(m.data, m.shape));
        if (m.type === 'backward' && m.penalty !== undefined) this.laterPenalties.set(m.sample, m.penalty);
        this.pump();
      }, m.sample),
    );
    port.on('message', (m: ToStage) =>
      guard(() => {
        if (m.type === 'input') {
          const size = m.data.length / m.count;
          for (let i = 0; i < m.count; i++) this.forwards.set(m.sample + i, { data: m.data.subarray(i * size, (i + 1) * size), shape: m.shape });
          this.chunkEnds.add(m.sample + m.count - 1);
        } else if (m.type === 'labels') {
          const size = m.data.length / m.count;
          for (let i = 0; i < m.count; i++) {
            const part = m.data.subarray(i * size, (i + 1) * size);
            this.labels.set(m.sample + i, m.dtype === 'int32' ? tf.tensor(Int32Array.from(part), m.shape, 'int32') : tf.tensor(part, m.shape));
          }
          this.labelChunkEnds.add(m.sample + m.count - 1);
        } else if (m.type === 'stats') {
          send({ type: 'stats', stats: { ...this.stats } });
          return;
        } else if (m.type === 'weights') {
          const weights = this.variables.map((v) => Float32Array.from(v.dataSync()));
          send({ type: 'weights', weights }, weights.map((w) => w.buffer as ArrayBuffer));
          return;
        }
        this.pump();
      }, 'sample' in m ? m.sample : null),
    );
  }

  private record(): void {
    const velocity = (this.stepper.state.momentum as { velocity?: NamedTensors } | undefined)?.velocity;
    this.history!.record(this.updates, { velocity: (v) => velocity?.[v.name], stepAhead: (d) => d * init.optimizer.lr });
  }

  /** Does every backward and forward that can run now, in sample order. */
  private pump(): void {
    this.current = null;
    for (let progress = true; progress; ) {
      progress = false;
      // A forward first: it feeds the next stage, which would otherwise wait while this one runs a backward.
      const t = this.nextForward;
      const ready = this.forwards.has(t) && (!this.history || this.history.has(Math.max(0, t - init.delay))) && (!this.last || this.labels.has(t));
      if (ready) {
        const t0 = performance.now();
        this.forward(t); // the last stage's forward includes its backward
        this.stats.forwardMs += performance.now() - t0;
        this.stats.forwards++;
        this.nextForward++;
        progress = true;
      }
      if (!this.last && this.backwards.has(this.nextBackward)) {
        const t0 = performance.now();
        this.backward(this.nextBackward++);
        this.stats.backwardMs += performance.now() - t0;
        this.stats.backwards++;
        progress = true;
      }
    }
  }

  private forward(t: number): void {
    this.current = t;
    const m = this.forwards.get(t)!;
    this.forwards.delete(t);
    if (!this.rehearsal) this.hooks.onSample?.({ stage: init.stage, sample: t, phase: 'forward' });
    if (m.shape.slice(1).join(',') !== init.inputShape.join(',')) {
      throw new Error(`stage ${init.stage} received an activation of shape [${m.shape}] for sample ${t}, but its first layer takes [batch, ${init.inputShape}]; the stages disagree about the boundary.`);
    }
    const x = tf.keep(tf.tensor(m.data, m.shape));
    this.stash.set(t, x);
    // Sample t's masks follow (seed, t, layer): its backward, after later forwards, replays them.
    const ctx = { training: true, recomputing: false, step: t, noiseKey: noiseKey(init.seed, t) };
    if (this.last && init.delay === 0) {
      this.backward(t);
      return;
    }
    const y = withWeights(this.variables, this.history!.forwardWeights(t), () => tf.tidy(() => runSegments(this.segments, [x], ctx)[0]));
    if (this.last) {
      const value = tf.tidy(() => this.loss(this.labels.get(t)!, y).dataSync()[0]);
      y.dispose();
      finiteLoss(value, t);
      this.reportLoss(t, value);
      this.backward(t);
      return;
    }
    const data = y.dataSync() as Float32Array;
    const shape = [...y.shape];
    y.dispose();
    const sent = Float32Array.from(data);
    // A rehearsal's next stage answers at once: zeros, shaped as a message would bring them.
    if (this.rehearsal) this.backwards.set(t, tf.tensor(new Float32Array(sent.length), structuredClone(shape)));
    else this.down!.send({ type: 'forward', sample: t, data: sent, shape });
  }

  private backward(t: number): void {
    this.current = t;
    if (!this.rehearsal) this.hooks.onSample?.({ stage: init.stage, sample: t, phase: 'backward' });
    const x = this.stash.get(t)!;
    const once = this.last && init.delay === 0;
    const ctx = { training: true, recomputing: !once, step: t, noiseKey: noiseKey(init.seed, t) };
    const dy = this.backwards.get(t);
    const labels = this.labels.get(t);
    const head = this.last ? { loss: this.loss, y: labels! } : { dys: [dy!] };
    const run = () => stageBackward(this.segments, this.variables, [x], ctx, init.stage > 1, head);
    // stageBackward tidies its own intermediates: what comes back is the gradients and the loss.
    const out = init.weightStashing && !once ? withWeights(this.variables, this.history!.forwardWeights(t), run) : run();
    const r = { dx: out.dxs[0], grads: out.grads, value: out.value };
    if (once) {
      const value = r.value!.dataSync()[0];
      if (!Number.isFinite(value)) tf.dispose([...r.grads.filter((g): g is tf.Tensor => g != null), r.dx ?? [], r.value!]);
      finiteLoss(value, t);
      this.reportLoss(t, value);
    }
    const grads: NamedTensors = {};
    this.variables.forEach((v, k) => r.grads[k] && (grads[v.name] = r.grads[k]!)); // no path: no update, as in the trainer
    const penalty = this.addPenalty(grads);
    if (init.stage > 1) {
      // Upstream first: the previous stage's backward needs only this gradient, so it runs while this stage updates.
      const data = Float32Array.from(r.dx!.dataSync());
      const shape = [...r.dx!.shape];
      r.dx!.dispose();
      if (!this.rehearsal) this.up!.send({ type: 'backward', sample: t, data, shape, ...(penalty === undefined ? {} : { penalty }) });
    }
    this.stepper.apply(grads, this.updates);
    this.constrain?.(grads);
    this.updates++;
    if (this.history) {
      this.record();
      this.history.release(t);
    }
    tf.dispose([x, dy ?? [], labels ?? [], r.value ?? [], ...Object.values(grads)]);
    this.stash.delete(t);
    this.backwards.delete(t);
    this.labels.delete(t);
    if (init.stage === 1) {
      r.dx?.dispose();
      if (penalty !== undefined) this.penalties.push(penalty);
      if (this.chunkEnds.delete(t)) {
        send({ type: 'done', through: t, ...(this.penalties.length ? { penalties: this.penalties } : {}) });
        this.penalties = [];
      }
    }
  }

  /**
   * Adds this stage's weight penalties' gradients, at the current weights, to `grads` (as
   * the trainer's step does for the whole model, core's layersPenalty) and returns the
   * penalties of this and the later stages for the sample's loss (undefined: none anywhere).
   */
  private addPenalty(grads: NamedTensors): number | undefined {
    const later = this.laterPenalties.get(this.current!);
    this.laterPenalties.delete(this.current!);
    if (!this.penalized.length) return later;
    const { value, grads: own } = tf.variableGrads(() => tf.addN(this.penalized.flatMap((l) => l.calculateLosses())) as tf.Scalar, this.variables);
    for (const [name, g] of Object.entries(own)) {
      if (grads[name]) {
        const sum = tf.add(grads[name], g);
        tf.dispose([grads[name], g]);
        grads[name] = sum;
      } else grads[name] = g;
    }
    const total = value.dataSync()[0] + (later ?? 0);
    value.dispose();
    return total;
  }

  /** Collects the last stage's losses and sends them at the end of each labels chunk. */
  private reportLoss(t: number, value: number): void {
    this.losses ??= { sample: t, values: [] };
    this.losses.values.push(value);
    if (this.labelChunkEnds.delete(t)) {
      send({ type: 'losses', ...this.losses });
      this.losses = null;
    }
  }
}

/**
 * The trainer's non-finite guard, for the last stage: a NaN or infinite loss stops the
 * pipeline before the sample's update (a NaN sample, or diverged weights, would otherwise
 * turn every weight NaN while train() resolved).
 */
function finiteLoss(value: number, sample: number): void {
  if (Number.isFinite(value)) return;
  throw new Error(`non-finite loss (${value}) at sample ${sample}; no update was applied for it. Check the samples for NaN or Infinity, or lower the learning rate`);
}

start().catch((err) => send({ type: 'failed', stage: init.stage, sample: null, error: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
