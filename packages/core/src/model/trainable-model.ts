import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import { noiseNames } from './noise-names';
import { seedLayerNoise } from './seed-layer-noise';
import type { Segment, SegmentContext } from './segment';
import { layersIn } from './layers-in';

/**
 * The model as the trainer sees it: a chain of segments (what memory planning,
 * reversible backprop and pipelining act on), plus the tfjs-layers model it came
 * from when there is one (what model surgery and `model.save` act on).
 */
export interface TrainableModel {
  readonly segments: readonly Segment[];
  /** The tfjs-layers model behind the segments, if any. */
  readonly layersModel?: tf.LayersModel;
  /** Expected input shape without the batch dimension, when known. */
  readonly inputShape?: readonly (number | null)[];
  /** Output shape without the batch dimension, when known. */
  readonly outputShape?: readonly (number | null)[];
  /**
   * Why a tfjs-layers chain was kept as one segment rather than split per layer, when it
   * was (a layer makes a mask the later layers read). Plugins that need several segments
   * name it when they refuse.
   */
  readonly unsplitReason?: string;
  /**
   * Frees what this model owns. The trainer calls it for a model a plugin swapped in
   * at setup (e.g. adapters around the user's variables); absent means "dispose the
   * tfjs-layers model, if the trainer built it".
   */
  dispose?(): void;
}

/** Runs the segments in order (single-tensor input and output at the ends). */
export function forwardSegments(model: TrainableModel, x: tf.Tensor, ctx: SegmentContext): tf.Tensor {
  let xs = [x];
  for (const s of model.segments) xs = s.forward(xs, ctx);
  return xs[0];
}

/** Every variable the model reads, deduplicated, in segment order. */
export function modelVariables(model: TrainableModel): tf.Variable[] {
  return [...new Set(model.segments.flatMap((s) => s.params))];
}

/** The variables that get gradients: `trainable` ones. */
export function trainableVariables(model: TrainableModel): tf.Variable[] {
  if (model.layersModel) {
    const names = new Set(model.layersModel.trainableWeights.map((w) => (w.read() as tf.Variable).name));
    return modelVariables(model).filter((v) => names.has(v.name));
  }
  return modelVariables(model).filter((v) => v.trainable);
}

/** A model built directly from segments (the segment API of docs/design.md, *Model = segments*). */
export function segmentModel(segments: Segment[], shapes: { inputShape?: number[]; outputShape?: number[] } = {}): TrainableModel {
  const names = new Set<string>();
  for (const s of segments) {
    if (names.has(s.name)) {
      throw new TapfitError(ErrorCodes.CONFIG, `segmentModel: two segments are named '${s.name}'; segment names must be unique (memory plans and checkpoints address segments by name). Rename one of them.`);
    }
    names.add(s.name);
  }
  return { segments, ...shapes };
}

function isSequentialChain(model: tf.LayersModel): boolean {
  // A functional model whose layers form a single chain can be split per layer too.
  if (model.inputs.length !== 1 || model.outputs.length !== 1) return false;
  const layers = model.layers.filter((l) => l.getClassName() !== 'InputLayer');
  return layers.every((l, i) => {
    const inbound = l.inboundNodes.length === 1 ? l.inboundNodes[0].inboundLayers : [];
    return inbound.length === 1 && (i === 0 ? inbound[0].getClassName() === 'InputLayer' : inbound[0] === layers[i - 1]);
  });
}

/**
 * Why the chain must run as one segment, if it must: a layer that makes a mask from an
 * unmasked input (an Embedding with `maskZero`, a Masking layer, a custom layer's
 * `computeMask`). tfjs hands masks from layer to layer only inside a model's own forward
 * (its executor, which model.fit, model.predict and `model.apply` all run), and then to
 * every later layer, so a chain split per layer would run the recurrent layers over the
 * padding. Nested models are searched: their masks reach the outer model's layers too.
 */
function maskReason(model: tf.LayersModel): string | undefined {
  const source = model.layers.flatMap(layersIn).find(makesMask);
  if (!source) return undefined;
  return `${source.getClassName()} '${source.name}' makes a mask that the layers after it read (as in model.fit), and tfjs passes masks only within a model's own forward, so the chain runs as one segment`;
}

/**
 * Whether `layer` returns a mask for unmasked input. Layers that pass masks on (recurrent
 * layers, Dense, the default computeMask) return none then; a layer whose computeMask
 * cannot be probed is assumed to make one (one segment is always model.fit's forward).
 */
function makesMask(layer: tf.layers.Layer): boolean {
  if (!layer.supportsMasking || layer.computeMask === tf.layers.Layer.prototype.computeMask) return false;
  const inputs = layer.inboundNodes[0]?.inputTensors;
  if (!inputs?.length) return true;
  try {
    return tf.tidy(() => {
      // What tfjs's executor passes: the inputs and their (absent) masks, as lists.
      const xs = inputs.map((t) => tf.zeros(t.shape.map((d) => d ?? 1), t.dtype));
      const mask = layer.computeMask(xs, xs.map(() => null) as unknown as tf.Tensor[]);
      return (Array.isArray(mask) ? mask : [mask]).some((m) => m != null);
    });
  } catch {
    return true;
  }
}

/**
 * Marks the segments `fromLayersModel` makes. A symbol key survives the object spread
 * wrappers use (`{ ...segment, forward }`), so a wrapped adapter segment is still one.
 */
const LAYERS_ADAPTER = Symbol('tapfit.layersAdapter');

/**
 * Whether the model's segments run tfjs-layers layers (made by `fromLayersModel`): such
 * segments read their variables directly and ignore `SegmentContext.weights`. A model
 * whose segments are hand-written (or built by a plugin, such as a reversible network
 * that also offers a tfjs-layers view in `layersModel`) reads its weights through
 * `readParam`, so weight substitutions (LoRA on segments) apply to it.
 */
export function isLayersAdapter(model: TrainableModel): boolean {
  return model.segments.some((s) => LAYERS_ADAPTER in s);
}

/**
 * Adapts a tfjs-layers model (`tf.sequential` or `tf.model`). A chain of layers becomes
 * one segment per layer, unless a layer in it makes a mask (see `maskReason`); any other
 * graph becomes one segment. Either way the forward is model.fit's.
 */
export function fromLayersModel(model: tf.LayersModel): TrainableModel {
  checkOneInputOneOutput(model);
  const vars = (layers: tf.layers.Layer[]): tf.Variable[] => layers.flatMap((l) => l.weights.map((w) => w.read() as tf.Variable));
  const noiseName = noiseNames(model);
  // `recomputing`, `step`, `noiseKey` and `noiseNames` reach each layer's call() kwargs so stateful custom layers
  // can skip updates and name the step in errors, and noisy ones can seed their draws (`noiseSeed`, `layerNoiseName`); tfjs's own noise layers are seeded here (`seedLayerNoise`). Built-in layers (BatchNormalization's moving statistics) update state in
  // call() regardless, so a recomputed forward restores their non-trainable weights.
  const applyLayer = (layer: tf.layers.Layer, xs: tf.Tensor[], ctx: SegmentContext): tf.Tensor[] => {
    const state = ctx.recomputing && ctx.training ? layer.nonTrainableWeights : [];
    const saved = state.map((w) => tf.clone(w.read()));
    const restoreSeeds = ctx.training ? seedLayerNoise(layer, ctx, noiseName) : undefined;
    try {
      const kwargs = { training: ctx.training, recomputing: ctx.recomputing, step: ctx.step, noiseNames: noiseName, ...(ctx.noiseKey === undefined ? {} : { noiseKey: ctx.noiseKey }) };
      const y = layer.apply(xs.length === 1 ? xs[0] : xs, kwargs) as tf.Tensor | tf.Tensor[];
      return Array.isArray(y) ? y : [y];
    } finally {
      restoreSeeds?.();
      state.forEach((w, i) => w.write(saved[i]));
      tf.dispose(saved);
    }
  };
  const segment = (name: string, layer: tf.layers.Layer, inside: tf.layers.Layer[]): Segment => {
    const why = inside.map(notReplayable).find((w) => w !== undefined);
    const s: Segment = { name, params: vars(inside), forward: (xs, ctx) => applyLayer(layer, xs, ctx), ...(why ? { notReplayable: why } : {}) };
    return Object.assign(s, { [LAYERS_ADAPTER]: true });
  };
  const chain = isSequentialChain(model);
  const unsplitReason = chain ? maskReason(model) : undefined;
  const segments: Segment[] =
    chain && !unsplitReason
      ? model.layers.filter((l) => l.getClassName() !== 'InputLayer').map((layer) => segment(layer.name, layer, [layer]))
      : [segment(model.name, model, model.layers)];
  return {
    segments,
    layersModel: model,
    inputShape: model.inputs[0].shape.slice(1),
    outputShape: model.outputs[0].shape.slice(1),
    ...(unsplitReason ? { unsplitReason } : {}),
  };
}

/**
 * tapfit trains one input to one output (the segments' chain, the loss, the data sources):
 * a model with several would otherwise fail deep in tfjs, or silently train its first head.
 */
function checkOneInputOneOutput(model: tf.LayersModel): void {
  const [inputs, outputs] = [model.inputs.length, model.outputs.length];
  if (inputs === 1 && outputs === 1) return;
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;
  throw new TapfitError(
    ErrorCodes.CONFIG,
    `the tfjs-layers model '${model.name}' has ${count(inputs, 'input')} and ${count(outputs, 'output')}; tapfit trains models with one input and one output ` +
      `(no per-output losses or lossWeights). Train this model with model.fit, or give the trainer one with one of each: outputs joined by ` +
      `tf.layers.concatenate with a loss function over the joined output, inputs concatenated into one tensor (or a segmentModel whose forward splits it).`,
  );
}

/** Accepts what users bring: a TrainableModel or a tfjs-layers model. */
export function toTrainableModel(model: TrainableModel | tf.LayersModel): TrainableModel {
  return model instanceof tf.LayersModel ? fromLayersModel(model) : model;
}

/** Why a replay of the layer's forward would differ from its first run, if it would (noise is seeded per forward: `seedLayerNoise`). */
function notReplayable(layer: tf.layers.Layer): string | undefined {
  const stateful = layersIn(layer).find((l) => (l as { stateful?: boolean }).stateful === true);
  if (stateful) return `${stateful.getClassName()} '${stateful.name}' is stateful: each call advances its state`;
  return undefined;
}
