import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { activationClamp, layerScale } from './compensation';
import { onlineNormalize, type NormMode } from './normalize';
import { resolveOptions, type OnlineNormOptions, type ResolvedOnlineNormOptions } from './options';
import { OnlineNormState } from './state';

type Kwargs = { [key: string]: unknown };

type BaseLayerArgs = NonNullable<ConstructorParameters<typeof tf.layers.Layer>[0]>;

// tfjs's own args, optional as there but also taking an explicit undefined (which tfjs treats as unset).
type LayerBaseArgs = { [K in 'name' | 'trainable' | 'inputShape' | 'batchInputShape' | 'batchSize' | 'dtype']?: BaseLayerArgs[K] | undefined };

export interface OnlineNormLayerArgs extends OnlineNormOptions, LayerBaseArgs {}

/** Keys of a layer config that belong to tfjs-layers' base Layer, not to OnlineNorm. */
const BASE_KEYS = new Set(['name', 'trainable', 'inputShape', 'batchInputShape', 'batchSize', 'dtype', 'weights', 'inputDType']);

/**
 * Online Normalization as a tfjs-layers layer (channels-last, per channel over the last
 * axis): `out = ECM(gamma * onlineNormalize(x) + beta)`.
 *
 * Modes, from `apply`/`call` kwargs: `training: true` updates M, V in the forward and
 * u, v in the backward; `training: true, recomputing: true` (or the `recomputing`
 * property) reproduces the last training call's output without touching M, V;
 * otherwise inference with the running statistics and no state change.
 *
 * M, V, u, v are non-trainable weights, so `model.save` / `tf.loadLayersModel` carry them.
 */
export class OnlineNorm extends tf.layers.Layer {
  static readonly className = 'OnlineNorm';

  readonly options: ResolvedOnlineNormOptions;
  /** Set by a memory executor around a recomputed forward (same as kwargs.recomputing). */
  recomputing = false;

  private gamma?: tf.LayerVariable;
  private beta?: tf.LayerVariable;
  private normState?: OnlineNormState;
  /** M, V before the last training call: what a recompute normalises with. */
  private snapshot?: { mean: tf.Tensor; variance: tf.Tensor; replayed: boolean };

  constructor(args: OnlineNormLayerArgs = {}) {
    const base: Record<string, unknown> = {};
    const options: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(args)) {
      // fromConfig tacks the deserialization's customObjects onto the config.
      if (key !== 'customObjects') (BASE_KEYS.has(key) ? base : options)[key] = value;
    }
    super(base as BaseLayerArgs);
    this.options = resolveOptions(options as OnlineNormOptions, `OnlineNorm '${this.name}'`);
  }

  override build(inputShape: tf.Shape | tf.Shape[]): void {
    const shape = (Array.isArray(inputShape[0]) ? inputShape[0] : inputShape) as tf.Shape;
    const channels = shape[shape.length - 1];
    if (shape.length < 2 || channels == null) {
      throw new TapfitError(ErrorCodes.SHAPE, `OnlineNorm '${this.name}': input must be channels-last [N, ..., C] with a known C (got [${shape}])`);
    }
    if (this.options.affine) {
      this.gamma = this.addWeight('gamma', [channels], 'float32', tf.initializers.ones(), undefined, true);
      this.beta = this.addWeight('beta', [channels], 'float32', tf.initializers.zeros(), undefined, true);
    }
    const stat = (name: string, init: ReturnType<typeof tf.initializers.zeros>) =>
      this.addWeight(name, [channels], 'float32', init, undefined, false).read() as tf.Variable;
    this.normState = new OnlineNormState(
      this.name,
      stat('mean', tf.initializers.zeros()),
      stat('variance', tf.initializers.ones()),
      stat('u', tf.initializers.zeros()),
      stat('v', tf.initializers.zeros()),
    );
    this.built = true;
  }

  /** The statistics M, V, u, v (available once built). */
  get state(): OnlineNormState {
    if (!this.normState) throw new TapfitError(ErrorCodes.STATE, `OnlineNorm '${this.name}': not built yet; apply it to an input first`);
    return this.normState;
  }

  override computeOutputShape(inputShape: tf.Shape | tf.Shape[]): tf.Shape | tf.Shape[] {
    return inputShape;
  }

  override call(inputs: tf.Tensor | tf.Tensor[], kwargs: Kwargs): tf.Tensor {
    return tf.tidy(() => {
      const x = Array.isArray(inputs) ? inputs[0] : inputs;
      const mode = this.modeOf(kwargs);
      if (typeof kwargs?.['step'] === 'number') this.state.step = kwargs['step'] as number;
      const { alphaFwd, alphaBkw, epsilon, checkFiniteEvery, recurrences, affine, ecm, clamp, epsLs } = this.options;
      const statistics = mode === 'recompute' ? this.replaySnapshot() : undefined;
      if (mode === 'train') this.takeSnapshot();
      let out = onlineNormalize(x, this.state, { mode, alphaFwd, alphaBkw, epsilon, checkFiniteEvery, recurrences, statistics });
      if (affine) out = tf.add(tf.mul(out, this.gamma!.read()), this.beta!.read());
      if (ecm === 'ac') out = activationClamp(out, clamp);
      else if (ecm === 'ls') out = layerScale(out, epsLs);
      return out;
    });
  }

  override getConfig(): tf.serialization.ConfigDict {
    return { ...this.options, ...super.getConfig() };
  }

  override dispose(): ReturnType<tf.layers.Layer['dispose']> {
    this.dropSnapshot();
    this.normState?.discardUnreadChecks();
    return super.dispose();
  }

  private modeOf(kwargs: Kwargs): NormMode {
    if (!kwargs?.['training']) return 'inference';
    return kwargs['recomputing'] || this.recomputing ? 'recompute' : 'train';
  }

  private takeSnapshot(): void {
    this.dropSnapshot();
    this.snapshot = { mean: tf.keep(tf.clone(this.state.mean)), variance: tf.keep(tf.clone(this.state.variance)), replayed: false };
  }

  private replaySnapshot(): { mean: tf.Tensor; variance: tf.Tensor } {
    const snapshot = this.snapshot;
    if (!snapshot) {
      throw new TapfitError(ErrorCodes.STATE, `OnlineNorm '${this.name}': asked to recompute a forward, but it has no training forward to replay; run it with training: true first`);
    }
    if (snapshot.replayed) {
      throw new TapfitError(
        ErrorCodes.STATE,
        `OnlineNorm '${this.name}': asked to recompute twice since its last training forward. A recompute replays the statistics of the ` +
          `last training call only, so a layer called several times per step (a recurrent cell) cannot be recomputed; keep (policy 'store') the segment that holds it.`,
      );
    }
    snapshot.replayed = true;
    return snapshot;
  }

  private dropSnapshot(): void {
    if (this.snapshot) tf.dispose([this.snapshot.mean, this.snapshot.variance]);
    this.snapshot = undefined;
  }
}

tf.serialization.registerClass(OnlineNorm);

/** `tf.layers`-style factory. */
export function onlineNormLayer(args?: OnlineNormLayerArgs): OnlineNorm {
  return new OnlineNorm(args);
}
