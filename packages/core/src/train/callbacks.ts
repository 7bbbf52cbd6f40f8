import * as tf from '@tensorflow/tfjs';
import { distance } from 'fastest-levenshtein';
import { ErrorCodes, TapfitError } from '../errors';
import type { FitParams } from '../hooks/types';

/** What fit passes to callbacks (numbers, as tfjs's callbacks see them after resolving). */
export type Logs = Record<string, number>;

/** `History.params` and what `setParams` gives callbacks, as tfjs's model.fit sets them. */

export type { FitParams };

/**
 * What `fit`'s `callbacks` option takes one of (as model.fit's CustomCallbackArgs): a
 * `{ onEpochEnd(epoch, logs) {...}, ... }` object, whose inline handlers get their parameter
 * types from here, or a tf.Callback (e.g. tf.callbacks.earlyStopping()), which has these methods.
 */
export interface CallbackHandlers {
  onTrainBegin?(logs?: Logs): unknown;
  onTrainEnd?(logs?: Logs): unknown;
  onEpochBegin?(epoch: number, logs?: Logs): unknown;
  onEpochEnd?(epoch: number, logs?: Logs): unknown;
  onBatchBegin?(batch: number, logs?: Logs): unknown;
  onBatchEnd?(batch: number, logs?: Logs): unknown;
  /** Accepted for model.fit compatibility and not called (fit logs a line saying so): tapfit does not yield per batch. */
  onYield?(epoch: number, batch: number, logs: Logs): unknown;
}

/** A tfjs callback as fit calls it: the handlers, and a tf.Callback's setParams / setModel. */
export interface CallbackLike extends CallbackHandlers {
  setParams?(params: FitParams): void;
  setModel?(model: unknown): void;
}

const HANDLERS = ['onTrainBegin', 'onTrainEnd', 'onEpochBegin', 'onEpochEnd', 'onBatchBegin', 'onBatchEnd'] as const;
type Handler = (typeof HANDLERS)[number];

/** tfjs's BaseCallback.prototype: its batch methods are no-ops, so callbacks that keep them need no per-batch call. */
const baseCallbackPrototype = Object.getPrototypeOf(tf.Callback.prototype) as Record<string, unknown>;

/**
 * The tfjs callbacks of one fit, called as model.fit calls them. tf.Callback subclasses
 * get `setParams` and `setModel` (a view of the trainer's model, see callbackModel); setting
 * `model.stopTraining = true` (what tf.callbacks.earlyStopping does) stops the trainer, on
 * that view or on the tfjs-layers model itself (a plain callback object closing over the
 * user's model, the tfjs docs' way). Batch handlers run only if some callback has one (a
 * no-op inherited from tfjs's base class does not count), so callbacks such as early
 * stopping cost nothing per step.
 */
export class FitCallbacks {
  private readonly list: CallbackLike[];
  readonly model: { stopTraining: boolean };
  /** Whether any callback handles batches (fit then builds batch logs, reading the loss back). */
  readonly wantsBatches: boolean;
  /** The tfjs-layers models whose own `stopTraining` flag stops the fit too. */
  private readonly flagged: readonly tf.LayersModel[];

  constructor(spec: unknown, layersModel: tf.LayersModel | undefined, inference?: TrainerInference, flagged: readonly tf.LayersModel[] = []) {
    this.list = toList(spec);
    this.model = callbackModel(layersModel, inference);
    this.wantsBatches = this.list.some((cb) => hasOwnHandler(cb, 'onBatchBegin') || hasOwnHandler(cb, 'onBatchEnd'));
    this.flagged = flagged;
    if (this.list.length) flagged.forEach(allowStopFlag);
  }

  get isEmpty(): boolean {
    return this.list.length === 0;
  }

  /** Hands callbacks the params and the model, and clears `stopTraining`, as model.fit does. */
  begin(params: FitParams): void {
    this.model.stopTraining = false;
    for (const cb of this.list) {
      cb.setParams?.(params);
      cb.setModel?.(this.model);
    }
  }

  /** Whether a callback asked to stop (`model.stopTraining = true` on the view or on a model itself). */
  get stopRequested(): boolean {
    return this.model.stopTraining === true || this.flagged.some((m) => stopFlag(m) === true);
  }

  /** onTrainBegin, then the models' own `stopTraining` cleared, where model.fit clears it (a stop set earlier is stale). */
  async trainBegin(): Promise<void> {
    await this.call('onTrainBegin', (cb) => cb.onTrainBegin!({}));
    for (const m of this.flagged) if (stopFlag(m)) m.stopTraining = false;
  }
  async trainEnd(): Promise<void> {
    await this.call('onTrainEnd', (cb) => cb.onTrainEnd!({}));
  }
  async epochBegin(epoch: number): Promise<void> {
    await this.call('onEpochBegin', (cb) => cb.onEpochBegin!(epoch, {}));
  }
  async epochEnd(epoch: number, logs: Logs): Promise<void> {
    await this.call('onEpochEnd', (cb) => cb.onEpochEnd!(epoch, { ...logs }));
  }
  async batchBegin(batch: number, logs: Logs): Promise<void> {
    if (this.wantsBatches) await this.call('onBatchBegin', (cb) => cb.onBatchBegin!(batch, { ...logs }));
  }
  async batchEnd(batch: number, logs: Logs): Promise<void> {
    if (this.wantsBatches) await this.call('onBatchEnd', (cb) => cb.onBatchEnd!(batch, { ...logs }));
  }

  private async call(handler: Handler, run: (cb: CallbackLike) => unknown): Promise<void> {
    for (const cb of this.list) if (typeof cb[handler] === 'function') await run(cb);
  }
}

/**
 * A Sequential refuses `stopTraining` (get and set) until its inner model is built, which
 * model.compile does first; the trainer has no compile, so it builds it as compile would,
 * for a callback to set the flag as under model.fit.
 */
function allowStopFlag(model: tf.LayersModel): void {
  if (refusesStopFlag(model)) model.build();
}

/**
 * A tfjs-layers model's `stopTraining`; undefined where a Sequential without its inner model
 * refuses to read it (nothing can have set it: its setter refuses too). Asked before reading,
 * not caught: this runs every step, and the refusal builds an Error with its stack each time
 * (about 90 us a step, 0.7 % of the MLP's step in the core-overhead bench, 2026-12-02).
 */
function stopFlag(model: tf.LayersModel): boolean | undefined {
  if (refusesStopFlag(model)) return undefined;
  try {
    return model.stopTraining;
  } catch {
    return undefined;
  }
}

/** A Sequential whose inner model is not built yet refuses `stopTraining`, reading and setting alike. */
function refusesStopFlag(model: tf.LayersModel): model is tf.Sequential {
  return model instanceof tf.Sequential && (model as unknown as { model?: unknown }).model == null;
}

function hasOwnHandler(cb: CallbackLike, handler: Handler): boolean {
  const fn = cb[handler];
  return typeof fn === 'function' && fn !== baseCallbackPrototype[handler];
}

/** tfjs's forms: one callback, a list of them, or nothing. */
function toList(spec: unknown): CallbackLike[] {
  if (spec === undefined || spec === null) return [];
  const list = Array.isArray(spec) ? spec : [spec];
  return list.map((cb, i) => {
    const where = Array.isArray(spec) ? `fit.callbacks[${i}]` : 'fit.callbacks';
    if (typeof cb !== 'object' || cb === null) {
      throw new TapfitError(ErrorCodes.CONFIG, `${where}: expected a callback object ({ onEpochEnd(epoch, logs) {...} }) or a tf.Callback such as tf.callbacks.earlyStopping(), got ${String(cb)}.`);
    }
    if (Object.getPrototypeOf(cb) === Object.prototype) checkPlainCallback(cb as Record<string, unknown>, where);
    return cb as CallbackLike;
  });
}

/** model.fit's CustomCallbackArgs keys for its yielding, which tapfit does not call (see yieldKeysNote). */
const YIELD_KEYS = ['onYield', 'nowFunc', 'nextFrameFunc'] as const;

/**
 * A plain callback object as model.fit takes it: it calls the hooks it knows and ignores
 * other keys, so a ported object may carry its own state and helper methods. What is
 * refused is a function under a near miss of a hook's name (`onEpochEnds`, `onBatchend`):
 * model.fit would silently never call it.
 */
function checkPlainCallback(cb: Record<string, unknown>, where: string): void {
  const known: readonly string[] = [...HANDLERS, 'onYield'];
  for (const [key, value] of Object.entries(cb)) {
    if (known.includes(key)) {
      // model.fit skips a hook left null or undefined (`onBatchEnd: verbose ? log : undefined`).
      if (typeof value !== 'function' && value != null) throw new TapfitError(ErrorCodes.CONFIG, `${where}.${key} must be a function, got ${String(value)}.`);
      continue;
    }
    if (typeof value !== 'function') continue; // the callback's own state
    const hook = misspeltHook(key, known);
    if (hook) {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `${where}: unknown callback '${key}' (did you mean '${hook}'?): neither model.fit nor fit would call it. Fix the name, or give a helper method a name further from the hooks (${HANDLERS.join(', ')}).`,
      );
    }
  }
}

/** The hook `key` is a likely typo of: the nearest one, if within 2 edits ignoring case. */
function misspeltHook(key: string, hooks: readonly string[]): string | undefined {
  const lower = key.toLowerCase();
  const near = hooks.map((h) => ({ h, d: distance(lower, h.toLowerCase()) })).sort((a, b) => a.d - b.d)[0];
  return near && near.d <= 2 ? near.h : undefined;
}

/** Callback objects whose yield keys fit has warned about. */
const noted = new WeakSet<object>();

/**
 * The line fit logs when callbacks carry model.fit's yield hooks, once per callback object
 * (a loop of fit calls with the same callbacks logs it once): model.fit calls `onYield` when
 * it yields to the event loop (every 125 ms by default); tapfit's fit lets the event loop turn
 * once a second between steps on its own and calls no hook there.
 */
export function yieldKeysNote(spec: unknown): string | undefined {
  const list = spec == null ? [] : Array.isArray(spec) ? spec : [spec];
  const keys = new Set<string>();
  for (const cb of list) {
    if (typeof cb !== 'object' || cb === null || noted.has(cb)) continue;
    const own = YIELD_KEYS.filter((k) => (cb as Record<string, unknown>)[k] != null);
    if (own.length) noted.add(cb);
    for (const k of own) keys.add(k);
  }
  if (!keys.size) return undefined;
  const named = [...keys].map((k) => `'${k}'`).join(', ');
  return (
    `fit.callbacks: ${named} ignored: tapfit's fit does not yield per batch as model.fit does (it lets the event loop turn once a second ` +
    `between steps on its own, and calls no hook there); run per-batch work in onBatchEnd, or drop the key.`
  );
}

/** The trainer's model.evaluate / model.predict, for the callbacks' model view. */
export interface TrainerInference {
  evaluate(x: tf.Tensor | tf.Tensor[], y: tf.Tensor | tf.Tensor[], args?: { batchSize?: number }): tf.Scalar | tf.Scalar[];
  predict(x: tf.Tensor | tf.Tensor[], args?: { batchSize?: number }): tf.Tensor | tf.Tensor[];
}

/**
 * The model callbacks see: it inherits from the trainer's tfjs-layers model (so `layers`,
 * `save`, ... read through to it, and tf.Callback's `instanceof LayersModel` holds; for a
 * segment model from LayersModel.prototype) and owns `stopTraining`, which a Sequential
 * refuses to carry before compile() and which the trainer reads. `evaluate` and `predict`
 * are the trainer's (a callback that evaluates `this.model` each epoch, common with
 * model.fit, would otherwise hit the uncompiled model's "needs to be compiled").
 */
function callbackModel(layersModel: tf.LayersModel | undefined, inference?: TrainerInference): { stopTraining: boolean } {
  const model = Object.create(layersModel ?? tf.LayersModel.prototype) as { stopTraining: boolean };
  let stop = false;
  Object.defineProperty(model, 'stopTraining', { get: () => stop, set: (v: boolean) => (stop = v), enumerable: true });
  if (inference) {
    const batchOnly = (args?: { batchSize?: number }) => (args?.batchSize === undefined ? {} : { batchSize: args.batchSize });
    Object.defineProperty(model, 'evaluate', { value: (x: tf.Tensor, y: tf.Tensor, args?: { batchSize?: number }) => inference.evaluate(x, y, batchOnly(args)) });
    Object.defineProperty(model, 'predict', { value: (x: tf.Tensor, args?: { batchSize?: number }) => inference.predict(x, batchOnly(args)) });
  }
  return model;
}
