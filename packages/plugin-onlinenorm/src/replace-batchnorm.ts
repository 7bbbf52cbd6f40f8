import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { OnlineNorm } from './layer';
import { configError, resolveOptions, type OnlineNormOptions, type ResolvedOnlineNormOptions } from './options';

/**
 * Which BatchNormalization layers to replace: 'batchNorm' (all of them), layer names,
 * a RegExp over layer names, or a predicate. Every selector must match at least one
 * BatchNormalization layer, and every listed name must be one.
 */
export type BatchNormSelector = 'batchNorm' | readonly string[] | RegExp | ((layer: tf.layers.Layer) => boolean);

export interface ReplaceBatchNormOptions extends OnlineNormOptions {
  /** Default 'batchNorm'. */
  replace?: BatchNormSelector | undefined;
  /**
   * Start OnlineNorm's running mean/variance from the BatchNorm's moving statistics
   * (default true); false starts from M = 0, V = 1. u, v always start at 0.
   */
  copyStatistics?: boolean | undefined;
}

/**
 * Functional twin of the plugin: a new, uncompiled model in which the selected
 * BatchNormalization layers are OnlineNorm layers with the same name, gamma and beta
 * (and, by default, moving statistics as the starting M, V). Every other weight is
 * copied. The input model is not modified. (tfjs-layers cannot swap a layer in place,
 * so the model is rebuilt from its config; nested Sequential/functional models too.)
 */
export function replaceBatchNorm(model: tf.LayersModel, cfg: ReplaceBatchNormOptions = {}): tf.LayersModel {
  return replaceBatchNormAs('replaceBatchNorm', model, cfg);
}

/** `replaceBatchNorm` with errors attributed to `who` (the plugin uses its own name). */
export function replaceBatchNormAs(who: string, model: tf.LayersModel, cfg: ReplaceBatchNormOptions): tf.LayersModel {
  const { replace, copyStatistics, options: resolved } = resolveReplaceOptions(cfg, who);
  const chosen = selectBatchNorms(model, replace, who);
  for (const layer of chosen) checkChannelsLast(layer, who);

  const config = rewrite(model, model.getConfig(), chosen, resolved, cfg.affine !== undefined);
  const fresh = (model instanceof tf.Sequential ? tf.Sequential.fromConfig(tf.Sequential, config) : tf.LayersModel.fromConfig(tf.LayersModel, config)) as tf.LayersModel;
  try {
    copyWeights(model, fresh, chosen, copyStatistics);
  } catch (err) {
    fresh.dispose();
    throw err;
  }
  return fresh;
}

/** Validates everything about `cfg` that does not need the model. */
export function resolveReplaceOptions(cfg: ReplaceBatchNormOptions, who: string): { replace: BatchNormSelector; copyStatistics: boolean; options: ResolvedOnlineNormOptions } {
  const { replace = 'batchNorm', copyStatistics = true, ...options } = cfg;
  checkSelector(replace, who);
  if (typeof copyStatistics !== 'boolean') throw configError(who, 'copyStatistics', `must be true or false (got ${copyStatistics})`);
  return { replace, copyStatistics, options: resolveOptions(options, who, ['replace', 'copyStatistics']) };
}

/** Checks a selector's form (not what it matches); `who` names the caller in the error. */
export function checkSelector(selector: unknown, who = 'replaceBatchNorm'): asserts selector is BatchNormSelector {
  const ok =
    selector === 'batchNorm' ||
    selector instanceof RegExp ||
    typeof selector === 'function' ||
    (Array.isArray(selector) && selector.every((name) => typeof name === 'string'));
  if (!ok) throw configError(who, 'replace', `must be 'batchNorm', a list of layer names, a RegExp or a predicate (got ${JSON.stringify(selector)})`);
}

/** The BatchNormalization layers a selector picks (at any nesting depth); throws if it picks none. */
export function selectBatchNorms(model: tf.LayersModel, selector: BatchNormSelector, who = 'replaceBatchNorm'): Set<tf.layers.Layer> {
  const all = batchNormLayers(model);
  const names = all.map((l) => l.name);
  const fail = (problem: string) =>
    configError(who, 'replace', `${problem}. BatchNormalization layers in model '${model.name}': ${names.length ? names.join(', ') : '(none)'}`);
  let picked: tf.layers.Layer[];
  if (selector === 'batchNorm') {
    picked = all;
    if (!picked.length) throw fail(`found no BatchNormalization layer to replace`);
  } else if (Array.isArray(selector)) {
    if (!selector.length) throw fail('is an empty list of layer names');
    picked = (selector as readonly string[]).map((name) => {
      const layer = all.find((l) => l.name === name);
      if (!layer) {
        const other = allLayers(model).find((l) => l.name === name);
        throw fail(other ? `names '${name}', a ${other.getClassName()}, not a BatchNormalization` : `names '${name}', which is not a layer of the model`);
      }
      return layer;
    });
  } else if (selector instanceof RegExp) {
    picked = all.filter((l) => selector.test(l.name));
    if (!picked.length) throw fail(`${selector} matches no BatchNormalization layer`);
  } else if (typeof selector === 'function') {
    picked = all.filter((l) => selector(l));
    if (!picked.length) throw fail('the predicate selects no BatchNormalization layer');
  } else {
    checkSelector(selector, who);
    picked = [];
  }
  return new Set(picked);
}

function allLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return model.layers.flatMap((l) => (l instanceof tf.LayersModel ? [l, ...allLayers(l)] : [l]));
}

function batchNormLayers(model: tf.LayersModel): tf.layers.Layer[] {
  return allLayers(model).filter((l) => l.getClassName() === 'BatchNormalization');
}

/** OnlineNorm is channels-last: the BatchNorm must normalise the last axis. */
function checkChannelsLast(layer: tf.layers.Layer, who: string): void {
  const inputShape = layer.built ? (layer.input as tf.SymbolicTensor).shape : null;
  if (!inputShape) {
    throw new TapfitError(ErrorCodes.SHAPE, `${who}: BatchNormalization '${layer.name}' is not built; build the model (give it an input shape) first`);
  }
  const axis = (layer.getConfig()['axis'] as number | number[]);
  const rank = inputShape.length;
  const axes = (Array.isArray(axis) ? axis : [axis]).map((a) => (a < 0 ? a + rank : a));
  const channels = layer.getWeights()[0]?.shape[0];
  if (axes.length !== 1 || axes[0] !== rank - 1 || channels !== inputShape[rank - 1]) {
    throw new TapfitError(
      ErrorCodes.SHAPE,
      `${who}: BatchNormalization '${layer.name}' normalises axis ${JSON.stringify(axis)} of input [${inputShape}] ` +
        `(${channels} channels), but OnlineNorm normalises the last axis (${inputShape[rank - 1]} channels): channel-count mismatch. ` +
        `Use channels-last data (axis -1) or leave this layer out of 'replace'.`,
    );
  }
}

type LayerEntry = { className: string; name?: string; config: tf.serialization.ConfigDict; [key: string]: unknown };

/** The model's config with the chosen BatchNorms turned into OnlineNorm entries (same name, same wiring). */
function rewrite(container: tf.LayersModel, config: tf.serialization.ConfigDict, chosen: Set<tf.layers.Layer>, options: OnlineNormOptions, affineGiven: boolean): tf.serialization.ConfigDict {
  const entries = config['layers'] as unknown as LayerEntry[];
  const layers = entries.map((entry) => {
    const name = (entry.name ?? entry.config['name']) as string;
    const layer = container.layers.find((l) => l.name === name);
    if (layer && chosen.has(layer)) {
      const { name: layerName, trainable, batchInputShape, dtype } = entry.config;
      const keep = Object.fromEntries(Object.entries({ name: layerName, trainable, batchInputShape, dtype }).filter(([, v]) => v !== undefined));
      // A BatchNorm without gamma and beta (center and scale false) keeps none, unless `affine` is given.
      const affine = affineGiven ? options.affine : entry.config['center'] !== false || entry.config['scale'] !== false;
      return { ...entry, className: OnlineNorm.className, config: { ...keep, ...options, affine } };
    }
    if (layer instanceof tf.LayersModel) return { ...entry, config: rewrite(layer, entry.config, chosen, options, affineGiven) };
    return entry;
  });
  return { ...config, layers } as unknown as tf.serialization.ConfigDict;
}

function copyWeights(from: tf.LayersModel, to: tf.LayersModel, chosen: Set<tf.layers.Layer>, copyStatistics: boolean): void {
  for (const source of from.layers) {
    const target = to.getLayer(source.name);
    if (chosen.has(source)) copyBatchNorm(source, target as OnlineNorm, copyStatistics);
    else if (source instanceof tf.LayersModel) copyWeights(source, target as tf.LayersModel, chosen, copyStatistics);
    else target.setWeights(source.getWeights());
  }
}

function copyBatchNorm(bn: tf.layers.Layer, on: OnlineNorm, copyStatistics: boolean): void {
  const byName = new Map(bn.weights.map((w) => [w.originalName.split('/').pop()!, w.read()]));
  const onWeights = new Map(on.weights.map((w) => [w.originalName.split('/').pop()!, w]));
  const state = on.state;
  const assign = (target: tf.LayerVariable | tf.Variable | undefined, value: tf.Tensor | undefined) => {
    if (!target || !value) return;
    if (value.shape[0] !== state.channels) {
      throw new TapfitError(ErrorCodes.SHAPE, `replaceBatchNorm: BatchNormalization '${bn.name}' has ${value.shape[0]} channels but OnlineNorm '${on.name}' has ${state.channels}`);
    }
    if (target instanceof tf.Variable) target.assign(value);
    else target.write(value);
  };
  if (on.options.affine) {
    assign(onWeights.get('gamma'), byName.get('gamma'));
    assign(onWeights.get('beta'), byName.get('beta'));
  }
  if (copyStatistics) {
    assign(state.mean, byName.get('moving_mean'));
    assign(state.variance, byName.get('moving_variance'));
  }
}
