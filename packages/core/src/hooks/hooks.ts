import type { ForwardPass } from '../step/forward-pass';
import type { MemoryPlan } from '../step/memory-plan';
import type { StepTransform } from '../transforms/types';
import { SeriesHook, SyncSeriesHook, WaterfallHook } from './hook-point';
import type { TapOptions } from './order';
import type {
  BatchEndInfo,
  EpochEndInfo,
  EpochStartInfo,
  EvaluateInfo,
  FitEndInfo,
  FitStartInfo,
  Gradients,
  ModelInfo,
  SetupContext,
  StepInfo,
} from './types';

/**
 * Every hook point of a trainer; each trainer has its own set. Written out so that editors
 * show each hook's documentation where a plugin taps it (`api.hooks.backward`).
 */
export interface Hooks {
  /** Once before training (async series): model surgery (`ctx.replaceModel`), validation. */
  readonly setup: SeriesHook<SetupContext>;
  /** Once after setup (sync waterfall): per-segment memory policies (`recompute`, `invert`, `extraBytes`). */
  readonly planMemory: WaterfallHook<MemoryPlan, ModelInfo>;
  /** Once after setup (sync waterfall): the update chain's members by name; replace one (e.g. 'momentum'). Needs a chain, not a `tf.train` optimizer. */
  readonly stepTransforms: WaterfallHook<StepTransform[], ModelInfo>;
  /** Start of `fit()` (async series): `{ epochs, stepsPerEpoch, initialEpoch }`. */
  readonly fitStart: SeriesHook<FitStartInfo>;
  /** Start of every epoch (async series). */
  readonly epochStart: SeriesHook<EpochStartInfo>;
  /** Before every step of a fit (async series, awaited only when tapped). */
  readonly batchStart: SeriesHook<StepInfo>;
  /** Every step, inside `tf.tidy` (sync waterfall): the forward pass (segments and their context); substitute weights, wrap segments. */
  readonly forward: WaterfallHook<ForwardPass, StepInfo>;
  /** Every step, inside `tf.tidy` (sync waterfall): maps the gradients (`null`: no update this step); each result is checked against the variables. */
  readonly backward: WaterfallHook<Gradients, StepInfo>;
  /** After every step of a fit (async series, awaited only when tapped): `loss()` reads the loss back. */
  readonly batchEnd: SeriesHook<BatchEndInfo>;
  /** Before fit's validation and every `evaluate()` (sync series): swap evaluation weights in (EMA, SWA). */
  readonly evaluateStart: SyncSeriesHook<EvaluateInfo>;
  /** After that evaluation, also when it failed (sync series): swap the training weights back. */
  readonly evaluateEnd: SyncSeriesHook<EvaluateInfo>;
  /** End of every epoch, after validation (async series): taps may add metrics to `logs`. */
  readonly epochEnd: SeriesHook<EpochEndInfo>;
  /** End of `fit()` (async series): `{ history }`, what fit returns. */
  readonly fitEnd: SeriesHook<FitEndInfo>;
}

/** A trainer's own set of hook points, empty. */
export function createHooks(): Hooks {
  return {
    setup: new SeriesHook<SetupContext>('setup', 'once before training: model surgery, validation'),
    planMemory: new WaterfallHook<MemoryPlan, ModelInfo>('planMemory', 'once after setup: per-segment memory policies'),
    stepTransforms: new WaterfallHook<StepTransform[], ModelInfo>('stepTransforms', 'once after setup: the update chain'),
    fitStart: new SeriesHook<FitStartInfo>('fitStart', 'start of fit()'),
    epochStart: new SeriesHook<EpochStartInfo>('epochStart', 'start of every epoch'),
    batchStart: new SeriesHook<StepInfo>('batchStart', 'before every step (awaited only when tapped)'),
    forward: new WaterfallHook<ForwardPass, StepInfo>('forward', 'every step, inside tf.tidy: the forward pass (segments and their context)'),
    backward: new WaterfallHook<Gradients, StepInfo>('backward', 'every step, inside tf.tidy: maps the gradients'),
    batchEnd: new SeriesHook<BatchEndInfo>('batchEnd', 'after every step (awaited only when tapped)'),
    evaluateStart: new SyncSeriesHook<EvaluateInfo>('evaluateStart', "before fit's validation and every evaluate(): swap evaluation weights in (EMA, SWA)"),
    evaluateEnd: new SyncSeriesHook<EvaluateInfo>('evaluateEnd', 'after the evaluation, also when it failed: swap the training weights back'),
    epochEnd: new SeriesHook<EpochEndInfo>('epochEnd', 'end of every epoch, after evaluation'),
    fitEnd: new SeriesHook<FitEndInfo>('fitEnd', 'end of fit()'),
  };
}

export type HookName = keyof Hooks;

export type TapFn<H> = H extends WaterfallHook<infer V, infer I>
  ? (value: V, info: I) => V
  : H extends SyncSeriesHook<infer I>
    ? (info: I) => void | undefined // not plain void, which would accept an async tap nothing awaits
    : H extends SeriesHook<infer I>
      ? (info: I) => void | Promise<void>
      : never;

/** What a plugin sees of a hook: it can tap, nothing else. */
export interface TapOnly<H> {
  tap(options: string | TapOptions, fn: TapFn<H>): void;
}

/** The tap-only view of every hook, handed to `plugin.apply`. */
// `keyof Hooks` written out (not HookName): a homomorphic mapped type, so each hook keeps its documentation.
export type TapOnlyHooks = { readonly [K in keyof Hooks]: TapOnly<Hooks[K]> };

/** A view whose taps are attributed to `plugin` (for ordering, errors and describe()). */
export function tapOnlyView(hooks: Hooks, plugin: string): TapOnlyHooks {
  const view = {} as Record<HookName, TapOnly<unknown>>;
  for (const key of Object.keys(hooks) as HookName[]) {
    const hook = hooks[key] as unknown as { tap(p: string, o: string | TapOptions, f: unknown): void };
    view[key] = Object.freeze({ tap: (options: string | TapOptions, fn: unknown) => hook.tap(plugin, options, fn) });
  }
  return Object.freeze(view) as unknown as TapOnlyHooks;
}
