import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import type { Module } from '../blocks/module';
import { layerFactory, type ParamFactory } from '../ops/params';

/** Builds a module from its (JSON) options and a parameter factory. */
export type ModuleBuilder = (options: Record<string, unknown> & { name: string }, params: ParamFactory) => Module;

const builders = new Map<string, ModuleBuilder>();

/** Makes a module kind available to `ModuleLayer` (and so to `tf.loadLayersModel`). */
export function registerModule(kind: string, builder: ModuleBuilder): void {
  builders.set(kind, builder);
}

export interface ModuleLayerArgs {
  /** A registered module kind, e.g. 'revSilo'. */
  module: string;
  /** The module's options (JSON); `name` (the segment's name) defaults to the layer's. */
  options: Record<string, unknown>;
  /** Seed of the layer's first random weight. Default 1. */
  seed?: number | undefined;
  name?: string | undefined;
  trainable?: boolean | undefined;
}

type BaseLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

const isShapeList = (s: tf.Shape | tf.Shape[]): s is tf.Shape[] => Array.isArray(s[0]);

/**
 * A tfjs-layers layer around one of this package's modules (a silo, the per-stream blocks,
 * space-to-depth, a reversible MBConv block, the heads): for inference and `model.save` /
 * `tf.loadLayersModel`. Its weights are the module's variables, so the segments that
 * train the model (`layer.module`) and the layers model share them. Stream lists in and
 * out are the layer's input and output lists.
 */
export class ModuleLayer extends tf.layers.Layer {
  static readonly className = 'TapfitRevsiloModule';
  readonly kind: string;
  readonly moduleOptions: Record<string, unknown>;
  readonly seed: number;
  private built_?: Module;
  private singleOutput = true;

  constructor(args: ModuleLayerArgs) {
    const { module, options, seed, ...base } = args;
    // fromConfig tacks the deserialization's customObjects onto the config.
    delete (base as Record<string, unknown>)['customObjects'];
    super(base as BaseLayerArgs);
    if (!builders.has(module)) {
      throw new TapfitError(ErrorCodes.CONFIG, `ModuleLayer '${this.name}': unknown module kind '${module}'; known: ${[...builders.keys()].join(', ')}. Import @tapfit/plugin-revsilo before loading the model.`);
    }
    this.kind = module;
    this.moduleOptions = options;
    this.seed = seed ?? 1;
  }

  /** The module (built with the layer). */
  get module(): Module {
    if (!this.built_) throw new TapfitError(ErrorCodes.STATE, `ModuleLayer '${this.name}': not built yet; apply it to an input first.`);
    return this.built_;
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const name = typeof this.moduleOptions['name'] === 'string' ? (this.moduleOptions['name'] as string) : this.name;
    if (!this.built_) this.built_ = builders.get(this.kind)!({ ...this.moduleOptions, name }, layerFactory(this, this.seed));
    this.singleOutput = this.outputsOf(inputShape).length === 1;
    this.built = true;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    const out = this.outputsOf(inputShape);
    return out.length === 1 ? out[0] : out;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: { [key: string]: unknown }): tf.Tensor | tf.Tensor[] {
    const xs = Array.isArray(inputs) ? inputs : [inputs];
    const ys = this.module.forward(xs, { training: kwargs?.['training'] === true, recomputing: false, step: 0 });
    return this.singleOutput ? ys[0] : ys;
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { module: this.kind, options: this.moduleOptions as tf.serialization.ConfigDict, seed: this.seed, ...super.getConfig() };
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    this.built_?.dispose?.();
    return super.dispose();
  }

  private outputsOf(inputShape: tf.Shape | tf.Shape[]): tf.Shape[] {
    const shapes = isShapeList(inputShape) ? inputShape : [inputShape];
    if (!this.built_) throw new TapfitError(ErrorCodes.STATE, `ModuleLayer '${this.name}': output shapes asked before build.`);
    return this.built_.outputShapes(shapes);
  }
}

tf.serialization.registerClass(ModuleLayer);

const usedNames = new Map<string, number>();

/**
 * `base`, or `base_<n>` when a layer of this process already has that name: tfjs-layers
 * caches execution orders by tensor names, so two models must not share layer names.
 */
export function uniqueLayerName(base: string): string {
  const n = usedNames.get(base) ?? 0;
  usedNames.set(base, n + 1);
  return n ? `${base}_${n + 1}` : base;
}

/** A layer for a registered module kind. */
export function moduleLayer(args: ModuleLayerArgs): ModuleLayer {
  return new ModuleLayer(args);
}
