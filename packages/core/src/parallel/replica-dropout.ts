import * as tf from '@tensorflow/tfjs';
import { noiseNames } from '../model/noise-names';
import { isNoiseLayer, noiseLayerOutput, type NoiseDraws } from '../model/noise-layers';
import { noiseSeed } from '../model/noise-seed';
import { DRAWS_OWN_SEEDED_NOISE, type CallFn } from '../model/seed-layer-noise';
import { layersIn } from '../model/layers-in';

/**
 * Which rows of the whole batch a replica's step computes, and the whole step's noise key.
 * A new object each step: the noise layers restart their count of applications with it.
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

/**
 * Makes the noise layers of a replica's own model copy draw, for the part's rows, the noise
 * rows a one-thread step draws for those samples. tfjs draws values one by one from the
 * seed, so the part's rows are rows `from..from+rows` of a draw of `from + rows` rows (a
 * replica draws at most the whole batch's noise, what one thread draws; noise that does not
 * vary along the batch, a noiseShape of 1 there, is drawn whole). The seed is a Dropout's
 * own, or else core's `noiseSeed` of the whole step's key (what the main thread's layers get),
 * whatever key the replica's context carries, with the application's index in this step's
 * forward as the draw: a layer applied twice in one forward (shared in a functional model)
 * draws twice, as on the main thread. Covers Dropout and SpatialDropout1D (masks drawn as
 * tf.dropout does) and GaussianNoise, GaussianDropout and AlphaDropout (core's
 * `noiseLayerOutput`, the formula the main thread seeds).
 */
export function drawWholeBatchMasks(model: tf.LayersModel, part: () => PartRows): void {
  // The main thread's keys (fromLayersModel): this copy's layers rank as the main model's do.
  const noiseName = noiseNames(model);
  for (const layer of layersIn(model)) {
    const kind = layer.getClassName();
    const dropout = kind === 'Dropout' || kind === 'SpatialDropout1D';
    if (!dropout && !isNoiseLayer(layer)) continue;
    const tfjsCall = layer.call.bind(layer);
    // The main thread counts a layer's applications per forward (seed-layer-noise.ts); a replica runs one forward per step.
    let counted: PartRows | undefined;
    let applications = 0;
    const nextDraw = (): { rowsOfStep: PartRows; draw: number } => {
      const rowsOfStep = part();
      if (rowsOfStep !== counted) [counted, applications] = [rowsOfStep, 0];
      return { rowsOfStep, draw: applications++ };
    };
    const seedOf = (noiseKey: number, draw: number) => noiseSeed({ noiseKey }, noiseName.get(layer) ?? layer.name, draw);
    layer.call = dropout
      ? dropoutCall(layer as DropoutLayer, tfjsCall, nextDraw, seedOf)
      : (inputs, kwargs) => {
          if (!kwargs['training']) return tfjsCall(inputs, kwargs);
          const { rowsOfStep, draw } = nextDraw();
          const input = Array.isArray(inputs) ? inputs[0]! : inputs;
          const seed = seedOf(rowsOfStep.noiseKey, draw);
          const rows = input.shape[0]!;
          const fixed = (layer as { noiseShape?: number[] | null }).noiseShape;
          // Noise per sample (the input's shape, or a noiseShape that spans the batch): the part's rows of the whole draw.
          const perSample = !fixed || (fixed.length === input.rank && fixed[0] !== 1);
          const rowsOf = (shape: number[], drawn: (s: number[]) => tf.Tensor) =>
            perSample ? tf.tidy(() => tf.slice(drawn([rowsOfStep.from + rows, ...shape.slice(1)]), rowsOfStep.from, rows)) : drawn(shape);
          const draws: NoiseDraws = {
            normal: (shape, mean, std) => rowsOf(shape, (s) => tf.randomNormal(s, mean, std, 'float32', seed)),
            uniform: (shape) => rowsOf(shape, (s) => tf.randomUniform(s, 0, 1, 'float32', seed)),
          };
          return noiseLayerOutput(layer, inputs, draws) ?? tfjsCall(inputs, kwargs);
        };
    Object.assign(layer, { [DRAWS_OWN_SEEDED_NOISE]: true });
  }
}

/** A Dropout's call on a part: its rows of the whole batch's mask. */
function dropoutCall(d: DropoutLayer, tfjsCall: CallFn, nextDraw: () => { rowsOfStep: PartRows; draw: number }, seedOf: (noiseKey: number, draw: number) => number): CallFn {
  const ownSeed = d.seed ?? undefined;
  return (inputs, kwargs) => {
    const input = Array.isArray(inputs) ? inputs[0]! : inputs;
    if (kwargs['training'] !== true) return tfjsCall(inputs, kwargs);
    const { rowsOfStep, draw } = nextDraw();
    if (!(d.rate > 0 && d.rate < 1)) return tfjsCall(inputs, kwargs);
    const { from, noiseKey } = rowsOfStep;
    const rows = input.shape[0]!;
    const whole = [from + rows, ...input.shape.slice(1)];
    const shape = (d.getNoiseShape({ shape: whole }) ?? whole).map((s, i) => s ?? whole[i]!);
    return tf.tidy(() => {
      // tf.dropout's arithmetic (floor(u + keep) / keep), on the part's rows of the whole draw.
      const keep = 1 - d.rate;
      const drawn = tf.randomUniform(shape, 0, 1, 'float32', ownSeed ?? seedOf(noiseKey, draw));
      const u = shape[0] === from + rows ? tf.slice(drawn, from, rows) : drawn;
      return tf.mul(input, tf.div(tf.floor(tf.add(u, keep)), keep));
    });
  };
}
