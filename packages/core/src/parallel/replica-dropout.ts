import * as tf from '@tensorflow/tfjs';
import { noiseNames } from '../model/noise-names';
import { noiseSeed } from '../model/noise-seed';

/**
 * Which rows of the whole batch a replica's step computes, and the whole step's noise key.
 * A new object each step: the Dropout layers restart their count of applications with it.
 */
export interface PartRows {
  /** The part's first row in the whole batch. */
  from: number;
  /** The whole step's noise key (the main thread's `ctx.noiseKey`). */
  noiseKey: number;
}

type DropoutLayer = tf.layers.Layer & {
  rate: number;
  seed?: number | null;
  getNoiseShape(input: { shape: number[] }): (number | null)[] | null;
};

/** Every layer inside `layer` (itself, or a nested model's layers, recursively). */
function layersIn(layer: tf.layers.Layer): tf.layers.Layer[] {
  return layer instanceof tf.LayersModel ? layer.layers.flatMap(layersIn) : [layer];
}

/**
 * Makes the Dropout and SpatialDropout1D layers of a replica's own model copy draw, for
 * the part's rows, the mask rows a one-thread step draws for those samples: tfjs draws a
 * mask value by value from its seed, so the part's rows are rows `from..from+rows` of a
 * draw of `from + rows` rows (a replica draws at most the whole batch's mask, what one
 * thread draws; a mask that does not vary along the batch, a noiseShape of 1 there, is
 * drawn whole). The seed is the layer's own, or core's `noiseSeed` of the whole step's key
 * (what the main thread's layers get), whatever key the replica's context carries, with the
 * application's index in this step's forward as the draw: a Dropout applied twice in one
 * forward (a shared layer in a functional model) draws two masks, as on the main thread.
 */
export function drawWholeBatchMasks(model: tf.LayersModel, part: () => PartRows): void {
  // The main thread's keys (fromLayersModel): this copy's layers rank as the main model's do.
  const noiseName = noiseNames(model);
  for (const layer of layersIn(model)) {
    const kind = layer.getClassName();
    if (kind !== 'Dropout' && kind !== 'SpatialDropout1D') continue;
    const d = layer as DropoutLayer;
    const ownSeed = d.seed ?? undefined;
    const tfjsCall = d.call.bind(d);
    // The main thread counts a layer's applications per forward (trainable-model.ts, seedDropouts); a replica runs one forward per step.
    let counted: PartRows | undefined;
    let applications = 0;
    d.call = (inputs, kwargs) => {
      const input = Array.isArray(inputs) ? inputs[0]! : inputs;
      if (kwargs['training'] !== true) return tfjsCall(inputs, kwargs);
      const rowsOfStep = part();
      if (rowsOfStep !== counted) [counted, applications] = [rowsOfStep, 0];
      const draw = applications++;
      if (!(d.rate > 0 && d.rate < 1)) return tfjsCall(inputs, kwargs);
      const { from, noiseKey } = rowsOfStep;
      const rows = input.shape[0]!;
      const whole = [from + rows, ...input.shape.slice(1)];
      const shape = (d.getNoiseShape({ shape: whole }) ?? whole).map((s, i) => s ?? whole[i]!);
      return tf.tidy(() => {
        // tf.dropout's arithmetic (floor(u + keep) / keep), on the part's rows of the whole draw.
        const keep = 1 - d.rate;
        const drawn = tf.randomUniform(shape, 0, 1, 'float32', ownSeed ?? noiseSeed({ noiseKey }, noiseName.get(d) ?? d.name, draw));
        const u = shape[0] === from + rows ? tf.slice(drawn, from, rows) : drawn;
        return tf.mul(input, tf.div(tf.floor(tf.add(u, keep)), keep));
      });
    };
  }
}
