import type * as tf from '@tensorflow/tfjs';
import { configError } from '../common/errors';
import { isContainer } from './catalog';

// Raw tf.variableGrads(f) and optimizer.minimize(f) without a var list train every
// variable whose own `trainable` flag is set, whatever its layer says. tfjs sets those
// flags when it builds a Sequential, loads a model, or runs a container's `trainable`
// setter (which turns on every weight a layer registered as trainable, frozen base
// layers' included), so LoRA models keep them equal to `model.trainableWeights`.

/** Models whose `trainable` setters re-sync the flags (installed once per container). */
const guarded = new WeakSet<tf.LayersModel>();

/**
 * Make every variable's flag say whether it is in `model.trainableWeights` (frozen base
 * layers and inactive adapters off; nothing on in a model set untrainable), and keep it
 * so: setting `trainable` on the model or a nested model re-syncs.
 */
export function syncTrainableFlags(model: tf.LayersModel): void {
  resync(model);
  for (const c of containersOf(model)) if (!guarded.has(c)) guard(c, model);
}

function resync(model: tf.LayersModel): void {
  const live = new Set(model.trainableWeights);
  for (const w of model.weights) w.trainable = live.has(w);
}

/** `container.trainable = v` runs tfjs' setter, then re-syncs the whole model. */
function guard(container: tf.LayersModel, root: tf.LayersModel): void {
  const own = accessor(container, 'trainable');
  Object.defineProperty(container, 'trainable', {
    configurable: true,
    enumerable: false,
    get(this: tf.LayersModel) {
      return own.get!.call(this) as boolean;
    },
    set(this: tf.LayersModel, value: boolean) {
      own.set!.call(this, value);
      resync(root);
    },
  });
  guarded.add(container);
}

function accessor(obj: object, key: string): PropertyDescriptor {
  for (let p: object | null = obj; p !== null; p = Object.getPrototypeOf(p)) {
    const d = Object.getOwnPropertyDescriptor(p, key);
    if (d?.get && d.set) return d;
  }
  throw configError(`model '${(obj as tf.LayersModel).name}' has no '${key}' accessor; this tfjs version is not supported.`);
}

function containersOf(model: tf.LayersModel): tf.LayersModel[] {
  return [model, ...model.layers.filter(isContainer).flatMap(containersOf)];
}
