import * as tf from '@tensorflow/tfjs';
import { engineGradients, wrapRunKernelFunc } from '../backend/engine-internals';
import type { SegmentContext } from '../model/segment';
import { modelVariables, trainableVariables, type TrainableModel } from '../model/trainable-model';
import { storeAllPlan } from '../step/memory-plan';
import type { LossFn } from '../step/step-request';
import { snapshotHostState } from './host-state';
import { planLevels } from './segment-executor';
import { backwardOf, forwardOf, inputGradNeeded, inverseOf, localVjp, lossHead, SegmentWalk, type Head, type Level } from './walk';

/**
 * What one segment costs in memory, measured once on a sample batch. Bytes are TF.js's
 * own accounting (`tf.memory().numBytes` at each kernel's end, what `tf.profile().peakBytes` reads): every tensor handle
 * counts its bytes, clones included. Peaks are taken above what was live when the
 * phase began, so they add up along a step (see predictPeakBytes).
 */
export interface SegmentCost {
  readonly name: string;
  readonly inputBytes: number;
  readonly outputBytes: number;
  /** Whether the step differentiates this segment (it has trainable variables, or a segment above it does). */
  readonly differentiable: boolean;
  /** Why its forward cannot be replayed (Segment.notReplayable): the planner keeps it `store`. */
  readonly notReplayable?: string;
  /** Peak above the input while the forward runs without the tape (the first forward of recompute and invert). */
  readonly forwardPeakBytes: number;
  /** What a taped forward keeps until its backward: the tape's saved tensors and the outputs (store). */
  readonly storedBytes: number;
  /** Peak above the input while the forward runs under the tape (store). */
  readonly storeForwardPeakBytes: number;
  /** Peak above the input during a store segment's backward, its stored tensors and output gradient live. */
  readonly storeBackwardPeakBytes: number;
  /** What a store segment leaves behind: its input gradient and parameter gradients. */
  readonly storeNetBytes: number;
  /** Peak above input and output gradient of the VJP that re-runs the forward (recompute, invert). */
  readonly vjpPeakBytes: number;
  /** What that VJP leaves behind: input gradient and parameter gradients. */
  readonly vjpNetBytes: number;
  /** Peak above the output while inverse() rebuilds the input; undefined without an inverse. */
  readonly inversePeakBytes?: number;
  /** Peak above output and output gradient of the segment's own backward() (rebuild and VJP in one pass); undefined without one. */
  readonly invertBackwardPeakBytes?: number;
  /** What that backward leaves behind: the rebuilt input, its gradient and the parameter gradients. */
  readonly invertBackwardNetBytes?: number;
  /** Bytes of the input gradient handed to the segment above (0 when none is needed). */
  readonly inputGradBytes: number;
  /** Kernel time of one forward: the price of recomputing the segment. */
  readonly forwardMs: number;
}

export interface MemoryProfile {
  /** Samples in the batch it was measured on. */
  readonly batchSize: number;
  readonly segments: readonly SegmentCost[];
  /** The loss and its gradient at the end of the chain, above the last output. */
  readonly head: { readonly peakBytes: number; readonly netBytes: number; readonly inputGradBytes: number };
  /** The largest parameter gradient (the executor hands each over as a fresh handle at the end). */
  readonly largestGradBytes: number;
}

export interface ProfileOptions {
  /** Variables that get gradients; default the model's trainable variables. */
  variables?: readonly tf.Variable[] | undefined;
}

/**
 * The sample batch to measure on. `y` defaults to a uniform distribution over the last
 * output axis (shaped like the model's output): valid labels for a classification loss,
 * and the same bytes as any target for the others.
 */
export interface MemorySample {
  readonly x: tf.Tensor;
  readonly y?: tf.Tensor;
}

/** How the executor runs a segment's forward: first as a training forward, again (recompute, invert) as a replay. */
const TRAINING: SegmentContext = { training: true, recomputing: false, step: 0 };
const REPLAY: SegmentContext = { ...TRAINING, recomputing: true };

/**
 * Measures each segment once on `sample` under every policy the executor can give it,
 * running the executor's own code paths with a kernel hook, with the step's `loss`
 * (the trainer's: its gradient is what flows back). Every measurement starts from the
 * model's state as it was (all segment variables, and the host state tied to them with
 * `tieHostState`, are restored before each and at the end), and each replayed forward
 * follows a training forward as in a real step, so stateful segments (normalisation
 * statistics and their call counters, recurrent state) neither drift nor lack a forward
 * to replay. Leaves no tensors behind.
 */
export async function profileSegments(model: TrainableModel, sample: MemorySample, loss: LossFn, options: ProfileOptions = {}): Promise<MemoryProfile> {
  const variables = options.variables ?? trainableVariables(model);
  const levels = planLevels(model.segments, storeAllPlan(model.segments.map((s) => s.name)), variables);
  const state = new StateSnapshot(modelVariables(model));
  const segments: SegmentCost[] = [];
  let xs = [sample.x];
  try {
    for (let i = 0; i < levels.length; i++) {
      const { cost, ys } = await measureSegment(levels[i], xs, inputGradNeeded(levels, i), state);
      segments.push(cost);
      if (xs[0] !== sample.x) tf.dispose(xs);
      xs = ys;
    }
    const head = await measureHead(xs, sample.y, loss, variables, levels[levels.length - 1].segment.name);
    const largestGradBytes = Math.max(0, ...variables.map((v) => bytesOf([v])));
    return { batchSize: sample.x.shape[0], segments, head, largestGradBytes };
  } finally {
    if (xs[0] !== sample.x) tf.dispose(xs);
    state.restore();
    state.dispose();
  }
}

/**
 * Copies of variables, to put them back after a forward moved them (moving statistics,
 * online normalisation state), and of the host state tied to them (tieHostState: call counters).
 */
class StateSnapshot {
  private readonly copies: tf.Tensor[];
  private readonly restoreHost: () => void;
  constructor(private readonly variables: readonly tf.Variable[]) {
    this.copies = variables.map((v) => tf.keep(tf.clone(v)));
    this.restoreHost = snapshotHostState(variables);
  }
  restore(): void {
    this.variables.forEach((v, i) => v.assign(this.copies[i]));
    this.restoreHost();
  }
  dispose(): void {
    tf.dispose(this.copies);
  }
}

async function measureSegment(level: Level, xs: tf.Tensor[], needDx: boolean, state: StateSnapshot): Promise<{ cost: SegmentCost; ys: tf.Tensor[] }> {
  const { segment } = level;
  state.restore();
  const forward = await measure(() => forwardOf(segment, xs, TRAINING));
  const ys = forward.result;
  const base = {
    name: segment.name,
    ...(segment.notReplayable ? { notReplayable: segment.notReplayable } : {}),
    inputBytes: bytesOf(xs),
    outputBytes: bytesOf(ys),
    forwardPeakBytes: forward.peak,
    forwardMs: forward.ms,
    inputGradBytes: needDx ? bytesOf(xs.filter(isFloat)) : 0,
  };
  if (!level.variables.length && !needDx) {
    const none = { storedBytes: 0, storeForwardPeakBytes: 0, storeBackwardPeakBytes: 0, storeNetBytes: 0, vjpPeakBytes: 0, vjpNetBytes: 0 };
    return { cost: { ...base, differentiable: false, ...none, inputGradBytes: 0 }, ys };
  }
  let dys: (tf.Tensor | null)[] = [];
  try {
    dys = tf.tidy(() => ys.map((y) => (isFloat(y) ? tf.randomNormal(y.shape) : null)) as tf.Tensor[]);
    const targets = [...(needDx ? xs : []), ...level.variables];

    // store, forward half: the tape alone (nothing depends on it, so the backward is empty).
    let storedBytes = 0;
    state.restore();
    const taped = await measure((start) => {
      const r = engineGradients(
        () => {
          forwardOf(segment, xs, TRAINING);
          storedBytes = liveBytes() - start;
          return tf.scalar(0);
        },
        targets,
        undefined,
        true,
      );
      r.value.dispose();
    });

    // store, whole: the walk with a stand-in for the rest of the chain that hands back dys.
    const stub: Head = (outs, owned) => ({ dxs: dys.map((d) => (d ? tf.clone(d) : null)), xs: outs, owned });
    let storeNetBytes = 0;
    state.restore();
    const whole = await measure((start) => {
      const grads = new SegmentWalk([{ ...level, policy: 'store' }], TRAINING, stub, needDx).run(xs);
      storeNetBytes = liveBytes() - start + base.inputGradBytes; // run() frees the input gradient a chain would pass up
      tf.dispose([...grads.values()]);
    });
    // Its backward half: the kernels after the forward's (the forward runs the same kernels both times).
    const sameStart = taped.kernels.every((k, n) => whole.kernels[n]?.name === k.name);
    const backward = sameStart ? whole.kernels.slice(taped.kernels.length) : whole.kernels;
    const storeBackwardPeakBytes = Math.max(0, ...backward.map((k) => k.totalBytesSnapshot - whole.start));

    // recompute / invert backward: the local VJP, replaying a training forward (as in a step).
    let vjpNetBytes = 0;
    state.restore();
    tf.dispose(forwardOf(segment, xs, TRAINING));
    const vjp = await measure((start) => {
      const grads = localVjp(level, xs, dys, needDx, REPLAY);
      vjpNetBytes = liveBytes() - start;
      tf.dispose(grads.filter((g): g is tf.Tensor => g !== null));
    });

    let inversePeakBytes: number | undefined;
    if (typeof segment.inverse === 'function') {
      const inverse = await measure(() => inverseOf(segment, ys, REPLAY));
      inversePeakBytes = inverse.peak;
      tf.dispose(inverse.result);
    }

    // invert with the segment's own backward: rebuild and VJP in one pass, after a training forward.
    let invertBackwardPeakBytes: number | undefined;
    let invertBackwardNetBytes: number | undefined;
    if (typeof segment.inverse === 'function' && typeof segment.backward === 'function') {
      state.restore();
      tf.dispose(forwardOf(segment, xs, TRAINING));
      const fused = await measure((start) => {
        const r = backwardOf(level, ys, dys, needDx, REPLAY);
        invertBackwardNetBytes = liveBytes() - start;
        tf.dispose([...r.xs, ...r.dxs, ...r.grads].filter((t): t is tf.Tensor => t !== null));
      });
      invertBackwardPeakBytes = fused.peak;
    }

    const cost: SegmentCost = {
      ...base,
      differentiable: true,
      storedBytes,
      storeForwardPeakBytes: taped.peak,
      storeBackwardPeakBytes,
      storeNetBytes,
      vjpPeakBytes: vjp.peak,
      vjpNetBytes,
      inversePeakBytes,
      invertBackwardPeakBytes,
      invertBackwardNetBytes,
    };
    return { cost, ys };
  } catch (err) {
    tf.dispose(ys); // a measurement refused (a memory guard): nothing is handed on
    throw err;
  } finally {
    tf.dispose(dys.filter((d): d is tf.Tensor => d !== null));
  }
}

async function measureHead(outs: tf.Tensor[], y: tf.Tensor | undefined, loss: LossFn, variables: readonly tf.Variable[], last: string): Promise<MemoryProfile['head']> {
  const labels = y ?? tf.fill(outs[0].shape, 1 / (outs[0].shape[outs[0].rank - 1] ?? 1));
  const end = lossHead((fwd) => loss(labels, fwd()), variables, last);
  const sums = new SegmentWalk([], REPLAY, end.head);
  let netBytes = 0;
  try {
    const head = await measure((start) => {
      const r = end.head(outs, false, sums);
      netBytes = liveBytes() - start;
      tf.dispose(r.dxs.filter((g): g is tf.Tensor => g !== null));
    });
    return { peakBytes: head.peak, netBytes, inputGradBytes: bytesOf(outs.filter(isFloat)) };
  } finally {
    end.value()?.dispose();
    sums.dispose();
    if (!y) labels.dispose();
  }
}

interface Measured<T> {
  result: T;
  /** Peak bytes above `start` at any kernel's end (0 when no kernel ran). */
  peak: number;
  start: number;
  kernels: { name: string; totalBytesSnapshot: number }[];
  ms: number;
}

/**
 * Runs `fn` and records, at the end of each kernel it runs (nested ones included, inner
 * first, as tf.profile lists them), the live bytes; `ms` is the time spent in its kernels.
 * Not under tf.profile: its profiler runs each kernel inside the backend's async timer, so
 * a kernel that throws (a memory guard's refusal) left tfjs reading outputs that were never
 * made ("Cannot read properties of undefined (reading 'map')") and the real error in a
 * rejection nobody awaited, which ended the process. Here the kernel's error is fn's.
 */
async function measure<T>(fn: (start: number) => T): Promise<Measured<T>> {
  const start = liveBytes();
  const kernels: Measured<T>['kernels'] = [];
  let ms = 0;
  let depth = 0;
  const unwrap = wrapRunKernelFunc((runKernelFunc) => (params) => {
    const began = depth++ === 0 ? performance.now() : 0;
    try {
      const out = runKernelFunc(params);
      kernels.push({ name: (params as { kernelName?: string }).kernelName ?? 'customGrad', totalBytesSnapshot: liveBytes() });
      return out;
    } finally {
      if (--depth === 0) ms += performance.now() - began;
    }
  });
  let result: T;
  try {
    result = fn(start);
  } finally {
    unwrap();
  }
  return { result, peak: Math.max(0, ...kernels.map((k) => k.totalBytesSnapshot - start)), start, kernels, ms };
}

function liveBytes(): number {
  return tf.memory().numBytes;
}

function isFloat(t: tf.Tensor): boolean {
  return t.dtype === 'float32';
}

function bytesOf(ts: readonly tf.Tensor[]): number {
  return ts.reduce((a, t) => a + t.size * (t.dtype === 'string' || t.dtype === 'complex64' ? 0 : tf.util.bytesPerElement(t.dtype)), 0);
}
