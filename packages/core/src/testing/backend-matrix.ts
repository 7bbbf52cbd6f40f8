import * as tf from '@tensorflow/tfjs';
import { selectBackend, type BackendName } from '../backend/select';
import type { Gradients } from '../hooks/types';
import { Stage } from '../hooks/order';
import type { TapfitPlugin } from '../plugin/types';
import type { ConformanceSpec } from './conformance-spec';
import type { Trainer } from '../train/trainer';
import { blobData, testTrainer, tinyModel } from './fixtures';

/** What a few training steps of a plugin's conformance model did on one backend. */
export interface BackendRun {
  backend: BackendName;
  /** Gradients of the first step as the backward computed them (before any plugin maps them), in variable order. */
  firstGradients: Float32Array[];
  /** The same step's gradients after every plugin's backward tap, or null when a plugin withheld the update (e.g. a delay). */
  firstMappedGradients: Float32Array[] | null;
  /** The loss of every step. */
  losses: number[];
  /** Wall time of the steps, setup excluded. */
  ms: number;
  /** Tensors alive afterwards that were not before (trainer and data disposed): 0 means nothing leaked. */
  leakedTensors: number;
}

/**
 * Trains `steps` batches of the plugin's conformance model (its `ConformanceSpec`:
 * plugin, trainer options, data, batch size) on `backend`, selected with
 * `selectBackend` so its training shim is in place, and records the first step's
 * gradients. The previously active backend is restored afterwards.
 */
export async function trainOnBackend(spec: ConformanceSpec, backend: BackendName, steps = 5): Promise<BackendRun> {
  const previous = tf.getBackend();
  await selectBackend(backend, { log: false });
  try {
    const before = tf.memory().numTensors;
    const probe = gradientProbe();
    const losses: number[] = [];
    const holder: { trainer?: Trainer } = {};
    const stop: TapfitPlugin = {
      name: 'backend-matrix-stop',
      core: '*',
      apply: ({ hooks }) => hooks.batchEnd.tap({ stage: Stage.LAST }, (info) => {
        losses.push(info.loss());
        if (losses.length >= steps) holder.trainer!.stop();
      }),
    };
    const data = spec.data?.() ?? blobData(64);
    const base = spec.trainer?.() ?? {};
    // Made here rather than by testTrainer, so that it is disposed too (the caller owns a trainer's model).
    const model = base.model ?? tinyModel();
    const trainer = testTrainer({ ...base, model, plugins: [...(base.plugins ?? []), spec.plugin(), probe.plugin, stop] });
    holder.trainer = trainer;
    let ms: number;
    try {
      await trainer.setup();
      const started = performance.now();
      const batchSize = spec.batchSize ?? 8;
      await trainer.fit(data, { epochs: Math.ceil((steps * batchSize) / (data.size ?? 64)) + 1, batchSize });
      ms = performance.now() - started;
    } finally {
      trainer.dispose();
      model.dispose?.();
      data.dispose?.();
    }
    return { backend, firstGradients: probe.first ?? [], firstMappedGradients: probe.firstMapped ?? null, losses, ms, leakedTensors: tf.memory().numTensors - before };
  } finally {
    if (previous && previous !== tf.getBackend()) await tf.setBackend(previous);
  }
}

/**
 * A variable's gradient is measured against its own largest entry, but never against
 * less than this fraction of the step's largest gradient entry: a gradient that is zero
 * in exact arithmetic (a normalisation's beta where a batch norm downstream cancels any
 * per-channel shift) comes out as float32 round-off of the step's sums (~1e-7 of the
 * largest gradient, different on every backend), which has no relative precision.
 */
export const GRADIENT_SCALE_FLOOR = 1e-3;

/**
 * Where a run's first-step gradients differ from the reference run's by more than
 * `rtol` (per variable: max |a - b| over max |b|, or over GRADIENT_SCALE_FLOOR times
 * the largest |b| of any variable when that is more), or null when they agree.
 */
export function gradientMismatch(run: BackendRun, reference: BackendRun, rtol = 1e-3): string | null {
  const compare = (what: string, a: Float32Array[] | null, b: Float32Array[] | null): string | null => {
    if (!a || !b) return a === b ? null : `${what}: withheld on ${a ? reference.backend : run.backend} only`;
    if (a.length !== b.length) return `${what}: ${a.length} variables on ${run.backend}, ${b.length} on ${reference.backend}`;
    const floor = scaleFloor(b);
    for (let v = 0; v < a.length; v++) {
      const error = relativeError(a[v], b[v], floor);
      if (!(error <= rtol)) return `${what} of variable ${v}: ${run.backend} differs from ${reference.backend} by ${error.toExponential(2)} relative (tolerance ${rtol})`;
    }
    return null;
  };
  return compare('first-step gradient', run.firstGradients, reference.firstGradients) ?? compare('first-step gradient after the plugins', run.firstMappedGradients, reference.firstMappedGradients);
}

/** The largest relative error (as `gradientMismatch` measures it) of any first-step gradient of `run` against `reference`, before and after the plugins. */
export function largestGradientError(run: BackendRun, reference: BackendRun): number {
  const errors = (a: Float32Array[], b: Float32Array[]) => {
    const floor = scaleFloor(b);
    return zip(a, b).map(([x, y]) => relativeError(x, y, floor));
  };
  return Math.max(0, ...errors(run.firstGradients, reference.firstGradients), ...errors(run.firstMappedGradients ?? [], reference.firstMappedGradients ?? []));
}

/** GRADIENT_SCALE_FLOOR times the largest |entry| of any of the reference gradients. */
function scaleFloor(reference: Float32Array[]): number {
  let largest = 0;
  for (const g of reference) for (const x of g) largest = Math.max(largest, Math.abs(x));
  return GRADIENT_SCALE_FLOOR * largest;
}

function zip<T>(a: T[], b: T[]): Array<[T, T]> {
  return a.map((x, i) => [x, b[i]]);
}

function relativeError(a: Float32Array, b: Float32Array, floor: number): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0;
  let scale = floor;
  for (let i = 0; i < b.length; i++) {
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
    scale = Math.max(scale, Math.abs(b[i]));
  }
  return Number.isNaN(diff) ? Infinity : diff / Math.max(scale, 1e-30);
}

/** A plugin that copies the first step's gradients as the backward produced them and as the plugins left them. */
function gradientProbe(): { plugin: TapfitPlugin; first?: Float32Array[]; firstMapped?: Float32Array[] | null } {
  const read = (g: Gradients): Float32Array[] | null => (g ? Object.values(g).map((t) => Float32Array.from(t.dataSync() as Float32Array)) : null);
  const probe: { plugin: TapfitPlugin; first?: Float32Array[]; firstMapped?: Float32Array[] | null } = {
    plugin: {
      name: 'backend-matrix-probe',
      core: '*',
      apply: ({ hooks }) => {
        hooks.backward.tap({ stage: Stage.FIRST }, (g) => {
          if (probe.first === undefined) probe.first = read(g) ?? [];
          return g;
        });
        hooks.backward.tap({ stage: Stage.LAST }, (g) => {
          if (probe.firstMapped === undefined) probe.firstMapped = read(g);
          return g;
        });
      },
    },
  };
  return probe;
}
