import * as tf from '@tensorflow/tfjs';
import { modelVariables, type TrainableModel } from '../model/trainable-model';

type Weight = { readonly trainable: boolean };

/**
 * How a layer's trainable weights are read: `own`, its `_trainableWeights` with their flags
 * (what tfjs's Layer getter filters, without the getter's allocations); `nested`, through its
 * `layers` (a model used as a layer); `getter`, its public `trainableWeights` (a layer that
 * overrides it, such as an RNN or a wrapper).
 */
type Probe = { layer: tf.layers.Layer; weights: 'own' | 'nested' | 'getter' };

function getterOf(proto: object | null, key: string): unknown {
  for (let p = proto; p; p = Object.getPrototypeOf(p) as object | null) {
    const d = Object.getOwnPropertyDescriptor(p, key);
    if (d) return d.get;
  }
  return undefined;
}
const layerGetter = getterOf(tf.layers.Layer.prototype, 'trainableWeights');
const containerGetter = getterOf(tf.LayersModel.prototype, 'trainableWeights');

function ownWeights(layer: tf.layers.Layer): readonly Weight[] | undefined {
  const own = (layer as unknown as { _trainableWeights?: unknown })._trainableWeights;
  return Array.isArray(own) ? (own as Weight[]) : undefined;
}

function addProbes(layer: tf.layers.Layer, probes: Probe[]): void {
  const getter = getterOf(layer, 'trainableWeights');
  const nested = (layer as { layers?: unknown }).layers;
  if (getter === containerGetter && Array.isArray(nested)) {
    probes.push({ layer, weights: 'nested' });
    for (const l of nested as tf.layers.Layer[]) addProbes(l, probes);
  } else {
    probes.push({ layer, weights: getter === layerGetter && ownWeights(layer) ? 'own' : 'getter' });
  }
}

/**
 * What decides which variables are trainable, read on the host (without allocating, but
 * for layers that override trainableWeights): every layer's `trainable` flag and its weights (with theirs), or, for a segment
 * model, each variable's flag. `changed()` tells whether any of it moved since this was
 * made, which is cheap enough to ask before every `trainStep` (3-8 µs on a 50-layer MLP
 * of 100 variables, whose step takes 17-70 ms on wasm); only then does the trainer compare
 * the variable sets themselves (trainableSetChange, 40-120 µs there: tfjs's
 * trainableWeights getters allocate).
 */
export class TrainableFlags {
  private readonly probes: readonly Probe[] | undefined;
  private readonly variables: readonly tf.Variable[] | undefined;
  private readonly seen: unknown[] = [];
  private readonly now: unknown[] = [];

  constructor(model: TrainableModel) {
    if (model.layersModel) {
      const probes: Probe[] = [];
      addProbes(model.layersModel, probes);
      this.probes = probes;
    } else {
      this.variables = modelVariables(model);
    }
    this.read(this.seen);
  }

  /** Whether a flag (or a layer's list of weights) differs from when this was made. */
  changed(): boolean {
    const now = this.read(this.now);
    if (now.length !== this.seen.length) return true;
    for (let i = 0; i < now.length; i++) if (now[i] !== this.seen[i]) return true;
    return false;
  }

  private read(out: unknown[]): unknown[] {
    out.length = 0;
    if (this.variables) {
      for (const v of this.variables) out.push(v.trainable);
      return out;
    }
    for (const { layer, weights } of this.probes ?? []) {
      out.push(layer.trainable);
      if (weights === 'nested') continue;
      for (const w of weights === 'own' ? (ownWeights(layer) ?? []) : layer.trainableWeights) out.push(w, w.trainable);
    }
    return out;
  }
}
