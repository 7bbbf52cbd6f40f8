import * as tf from '@tensorflow/tfjs';
import { isNoiseLayer, noiseLayerOutput, seededDraws } from './noise-layers';
import { noiseSeed } from './noise-seed';
import type { SegmentContext } from './segment';
import { layersIn } from './layers-in';

/**
 * Marks a layer whose `call` already draws seeded noise of its own making (a data-parallel
 * replica's layers draw their rows of the whole batch's noise: parallel/replica-dropout.ts):
 * `seedLayerNoise` leaves it alone.
 */
export const DRAWS_OWN_SEEDED_NOISE = Symbol('tapfit.drawsOwnSeededNoise');

/**
 * tfjs's noise layers draw unseeded noise per call: Dropout and SpatialDropout1D without a
 * seed of their own (tfjs's default; `null` in a model loaded or rebuilt from JSON), and
 * GaussianNoise, GaussianDropout and AlphaDropout always (`noise-layers.ts`). A recomputed
 * forward would then differentiate other noise than the loss saw. For one training forward
 * this seeds each of them inside `layer` from the context (`noiseSeed(ctx, noise name,
 * draw)`: trainer seed, batch, layer (its name, or its class and rank when tfjs made the
 * name up: `noiseNames`), and which of the layer's applications in this forward it is), so
 * a replay, in any order, draws the same noise, and a layer applied twice in one forward (a
 * shared layer in a functional model) draws fresh noise for each application, as tfjs's
 * unseeded calls do. Returns what puts the layers' own (absent) seeds and calls back.
 */
export function seedLayerNoise(layer: tf.layers.Layer, ctx: SegmentContext, noiseName: ReadonlyMap<tf.layers.Layer, string>): (() => void) | undefined {
  const noisy = layersIn(layer).filter((l) => !(DRAWS_OWN_SEEDED_NOISE in l) && ((isDropout(l) && (l as { seed?: number | null }).seed == null) || isNoiseLayer(l)));
  if (!noisy.length) return undefined;
  const restores = noisy.map((l) => {
    const seeded = l as unknown as { seed?: number | null; call: CallFn };
    const own = seeded.seed;
    const hadOwnCall = Object.hasOwn(l, 'call');
    const call = seeded.call;
    const seedOf = (draw: number) => noiseSeed(ctx, noiseName.get(l) ?? l.name, draw);
    let draw = 0;
    seeded.call = isDropout(l)
      ? function (this: typeof seeded, inputs, kwargs) {
          // tfjs's Dropout reads its seed once per call, when it draws the mask.
          this.seed = seedOf(draw++);
          return call.call(this, inputs, kwargs);
        }
      : function (this: typeof seeded, inputs, kwargs) {
          const seed = seedOf(draw++);
          // Not training (a nested call told so): tfjs's call, which draws nothing.
          const out = kwargs['training'] ? noiseLayerOutput(l, inputs, seededDraws(seed)) : undefined;
          return out ?? call.call(this, inputs, kwargs);
        };
    return () => {
      if (hadOwnCall) seeded.call = call;
      else delete (seeded as { call?: CallFn }).call;
      if (isDropout(l)) seeded.seed = own;
    };
  });
  return () => restores.forEach((restore) => restore());
}

/** A tfjs layer's `call`. */
export type CallFn = (inputs: tf.Tensor | tf.Tensor[], kwargs: Record<string, unknown>) => tf.Tensor | tf.Tensor[];

const isDropout = (l: tf.layers.Layer): boolean => l.getClassName() === 'Dropout' || l.getClassName() === 'SpatialDropout1D';

