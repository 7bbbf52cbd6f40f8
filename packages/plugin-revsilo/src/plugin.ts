import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, optionSchemas, parseOptions, Stage, TapfitError, type MemoryPlan, type Segment, type SegmentContext, type TapfitPlugin, type TrainableModel } from '@tapfit/core';
import { z } from 'zod';
import { recomputeBeforeRounding } from './reversible/exact-handoff';
import { ReversibleSegment } from './reversible/reversible-segment';

export const REVSILO_PLUGIN = 'revsilo';

/** Which segments to plan 'invert': names, a name pattern, or a predicate. */
export type SegmentSelector = readonly string[] | RegExp | ((name: string) => boolean);

export interface RevsiloOptions {
  /** Segments to invert. Default: every segment with an `inverse` (all reversible units of revBiFPN and reversibleUNet3d). */
  segments?: SegmentSelector | undefined;
  /**
   * Compare every replay of an inverted segment with the original (a rebuilt input with
   * the input, a recomputed output with the output) and fail, naming the segment, when they
   * differ by more than `tolerance` (relative to the largest magnitude; default 1e-3):
   * catches transforms that do not replay (an unseeded random op, state that moves on every
   * call). A debugging aid: it keeps copies of each inverted segment's input and output for
   * the step and reads values back.
   */
  checkReconstruction?: boolean | { tolerance?: number | undefined } | undefined;
}

const { flag, positive } = optionSchemas;

// Strict at every level, so a misspelt option (also inside checkReconstruction) fails naming it.
const optionsSchema = z.strictObject(
  {
    segments: z
      .union([z.array(z.string()), z.instanceof(RegExp), z.custom<(name: string) => boolean>((v) => typeof v === 'function')], {
        error: "must be a list of segment names, a RegExp or a function of the name (e.g. ['block0', 'block1'] or /silo/)",
      })
      .optional(),
    checkReconstruction: z.union([flag, z.strictObject({ tolerance: positive.optional() })], { error: 'must be true, false or { tolerance > 0 } (e.g. { tolerance: 1e-3 })' }).optional(),
  },
  { error: 'options must be an object, e.g. revsilo({})' },
);

/** The option errors the plugin factory throws (before any trainer exists). */
function checkOptions(options: RevsiloOptions): { segments?: SegmentSelector; tolerance?: number } {
  const o = parseOptions(REVSILO_PLUGIN, optionsSchema, options);
  const c = o.checkReconstruction;
  return { segments: o.segments, tolerance: c === true ? 1e-3 : c ? (c.tolerance ?? 1e-3) : undefined };
}

function selects(selector: SegmentSelector | undefined, segment: Segment): boolean {
  if (selector === undefined) return typeof segment.inverse === 'function';
  if (selector instanceof RegExp) return selector.test(segment.name);
  if (typeof selector === 'function') return selector(segment.name);
  return selector.includes(segment.name);
}

/**
 * The plan with the selected segments marked 'invert' (the plugin's `planMemory` tap,
 * usable without a trainer: pass the result to `SegmentExecutor`). A selected segment
 * without `inverse`, a name the model lacks, or a selection of nothing is an error naming
 * the segment and the fix. `base` is not changed. A selected segment right before an
 * inverted exact one that rounds its output (a float32 segment before a fixed-point one) is
 * planned 'recompute' instead: rebuilt from the rounded output, its gradients would be wrong
 * (reversible/exact-handoff.ts).
 */
export function reversiblePlan(model: TrainableModel, options: Pick<RevsiloOptions, 'segments'> = {}, base?: MemoryPlan): MemoryPlan {
  return planReversible(model, options, base).plan;
}

function planReversible(model: TrainableModel, options: Pick<RevsiloOptions, 'segments'>, base?: MemoryPlan): { plan: MemoryPlan; recomputed: string[] } {
  const plan: MemoryPlan = base ? { ...base, segments: base.segments.map((s) => ({ ...s })), extraBytes: [...base.extraBytes] } : { segments: model.segments.map((s) => ({ name: s.name, policy: 'store' })), extraBytes: [] };
  const names = new Set(model.segments.map((s) => s.name));
  if (Array.isArray(options.segments)) {
    for (const n of options.segments as readonly string[]) {
      if (!names.has(n)) throw new TapfitError(ErrorCodes.CONFIG, `${REVSILO_PLUGIN}: option 'segments' names '${n}', which the model does not have (segments: ${[...names].slice(0, 8).join(', ')}${names.size > 8 ? ', ...' : ''}); fix the name.`);
    }
  }
  const chosen = model.segments.filter((s) => selects(options.segments, s));
  for (const s of chosen) {
    if (typeof s.inverse !== 'function') {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `${REVSILO_PLUGIN}: segment '${s.name}' is selected for 'invert' but has no inverse(); select only reversible segments (those revBiFPN, reversibleUNet3d, coupling or revSilo build) or give it an inverse.`,
      );
    }
  }
  if (!chosen.length) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `${REVSILO_PLUGIN}: no segment of the model ${options.segments === undefined ? 'has an inverse' : "matches option 'segments'"} (segments: ${[...names].slice(0, 8).join(', ')}${names.size > 8 ? ', ...' : ''}); ` +
        'build the model from reversible segments (revBiFPN, reversibleUNet3d, coupling, revSilo) or fix the selection.',
    );
  }
  const inverted = new Set(chosen.map((s) => s.name));
  for (const s of plan.segments) if (inverted.has(s.name)) s.policy = 'invert';
  return { plan, recomputed: recomputeBeforeRounding(model.segments, plan) };
}

/**
 * Keeps copies of a segment's input and output in the training forward, and checks what a
 * replay produces against them: a recomputed forward must give the same output, and an
 * inverse or one-pass backward must rebuild the same input.
 */
class ReconstructionCheck {
  private readonly copies = new Map<string, { xs: tf.Tensor[]; ys: tf.Tensor[] }>();

  constructor(private readonly tolerance: number) {}

  wrap(segment: Segment): Segment {
    const wrapped: Segment = {
      name: segment.name,
      params: segment.params,
      forward: (xs, ctx) => {
        const ys = segment.forward(xs, ctx);
        if (ctx.training && !ctx.recomputing) this.keep(segment, xs, ys);
        else if (ctx.training) this.compare(segment.name, 'recomputed output', 'ys', ys);
        return ys;
      },
    };
    if (segment.inverse) wrapped.inverse = (ys, ctx) => this.compare(segment.name, 'rebuilt input', 'xs', segment.inverse!(ys, ctx));
    if (segment.backward) {
      wrapped.backward = (ys, dys, variables, ctx: SegmentContext) => {
        const r = segment.backward!(ys, dys, variables, ctx);
        this.compare(segment.name, 'rebuilt input', 'xs', r.xs);
        return r;
      };
    }
    return wrapped;
  }

  dispose(): void {
    for (const { xs, ys } of this.copies.values()) tf.dispose([...xs, ...ys]);
    this.copies.clear();
  }

  private keep(segment: Segment, xs: tf.Tensor[], ys: tf.Tensor[]): void {
    const old = this.copies.get(segment.name);
    if (old) tf.dispose([...old.xs, ...old.ys]);
    // An exact segment rebuilds its input as its forward rounded it (q(x), not x).
    const input = tf.tidy(() => (segment instanceof ReversibleSegment ? segment.roundInput(xs) : xs).map((x) => tf.clone(x)));
    this.copies.set(segment.name, { xs: input.map((x) => tf.keep(x)), ys: ys.map((y) => tf.keep(tf.clone(y))) });
  }

  private compare(name: string, what: string, which: 'xs' | 'ys', replayed: tf.Tensor[]): tf.Tensor[] {
    const original = this.copies.get(name)?.[which];
    if (!original) return replayed;
    const errors = tf.tidy(() =>
      original.map((x, k) => {
        const scale = tf.max(tf.abs(x)).dataSync()[0] || 1;
        return replayed[k] && sameShape(replayed[k], x) ? tf.max(tf.abs(tf.sub(replayed[k], x))).dataSync()[0] / scale : Infinity;
      }),
    );
    const worst = Math.max(...errors);
    if (!(worst <= this.tolerance)) {
      throw new TapfitError(
        ErrorCodes.STATE,
        `${REVSILO_PLUGIN}: segment '${name}' gave a ${what} off by ${worst.toPrecision(3)} relative to the original (stream ${errors.indexOf(worst)}; tolerance ${this.tolerance}), so its gradients would be wrong. ` +
          'Its forward does not give the same values when replayed: draw random numbers with replayedUniform/dropout/dropPath (seeded by ctx.step), keep statistics with Norm (replays them), ' +
          "and advance state only when !ctx.recomputing; or, if the error is rounding growing through ill-conditioned transforms (batch norm over very few values), use larger batches or plan the segment 'store'.",
      );
    }
    return replayed;
  }
}

function sameShape(a: tf.Tensor, b: tf.Tensor): boolean {
  return a.rank === b.rank && a.shape.every((d, i) => d === b.shape[i]);
}

/**
 * The revsilo plugin: plans reversible segments 'invert' (`planMemory`, before
 * `memoryBudget`, whose planner keeps the marks and plans the rest), so the default
 * Backprop trains them without keeping their activations, rebuilding each input in the
 * backward with the segment's one-pass `backward`. The segments themselves replay
 * dropout masks (seeded by the step) and normalisation statistics, which move once per
 * step. `trainer.describe()` lists the policies.
 */
export function revsilo(options: RevsiloOptions = {}): TapfitPlugin {
  const check = checkOptions(options);
  const checker = check.tolerance !== undefined ? new ReconstructionCheck(check.tolerance) : undefined;
  let inverted = new Set<string>();
  return {
    name: REVSILO_PLUGIN,
    core: '^0.1.0',
    apply({ hooks, logger }) {
      hooks.planMemory.tap({ stage: Stage.DEFAULT }, (plan, info) => {
        const { plan: next, recomputed } = planReversible(info.model, check, plan);
        inverted = new Set(next.segments.filter((s) => s.policy === 'invert').map((s) => s.name));
        const exact = info.model.segments.filter((s) => inverted.has(s.name) && s instanceof ReversibleSegment && s.fixedPoint !== undefined).length;
        logger.info(
          `${REVSILO_PLUGIN}: planning ${inverted.size} of ${next.segments.length} segments 'invert' (${[...inverted].slice(0, 6).join(', ')}${inverted.size > 6 ? ', ...' : ''}); ` +
            `${exact} rebuild their inputs exactly (fixed-point), ${inverted.size - exact} up to float32 rounding` +
            (recomputed.length ? `; ${recomputed.join(', ')} 'recompute' instead: the exact segment after each rounds its output, so it could not rebuild its input` : ''),
        );
        return next;
      });
      if (checker) {
        hooks.forward.tap({ stage: Stage.LAST }, (pass) => ({ ...pass, segments: pass.segments.map((s) => (inverted.has(s.name) ? checker.wrap(s) : s)) }));
      }
    },
    dispose() {
      checker?.dispose();
    },
  };
}
