import * as tf from '@tensorflow/tfjs';

/**
 * tfjs's GaussianNoise, GaussianDropout and AlphaDropout layers, whose `call` draws its
 * noise without a seed (tfjs-layers `layers/noise.ts`, measured on 4.22). Their training
 * output is written out here with the noise drawn by the caller, so a forward can draw it
 * seeded (`noiseSeed`) and a replay of the forward redraws it.
 */
const NOISE_LAYERS = new Set(['GaussianNoise', 'GaussianDropout', 'AlphaDropout']);

export const isNoiseLayer = (layer: tf.layers.Layer): boolean => NOISE_LAYERS.has(layer.getClassName());

/** Where the layer's noise comes from: each returns a float32 tensor of `shape`. */
export interface NoiseDraws {
  /** Values from N(mean, std). */
  normal(shape: number[], mean: number, std: number): tf.Tensor;
  /** Values from U[0, 1). */
  uniform(shape: number[]): tf.Tensor;
}

type NoiseLayer = tf.layers.Layer & { stddev?: number; rate?: number; noiseShape?: number[] | null };

/** SELU's constants, as tfjs's AlphaDropout writes them. */
const ALPHA = 1.6732632423543772848170429916717;
const SCALE = 1.0507009873554804934193349852946;

/**
 * What tfjs's training call of `layer` returns for `inputs`, with its noise from `draws`
 * (same ops in the same order, so the same noise gives the same bits). Undefined where
 * tfjs draws nothing or would refuse the input (a rate outside (0, 1), several inputs):
 * tfjs's own call then gives its answer.
 */
export function noiseLayerOutput(layer: tf.layers.Layer, inputs: tf.Tensor | tf.Tensor[], draws: NoiseDraws): tf.Tensor | undefined {
  const input = Array.isArray(inputs) ? (inputs.length === 1 ? inputs[0]! : undefined) : inputs;
  if (!input) return undefined;
  const l = layer as NoiseLayer;
  const rate = l.rate ?? NaN;
  switch (layer.getClassName()) {
    case 'GaussianNoise':
      return tf.tidy(() => tf.add(draws.normal(input.shape, 0, l.stddev!), input));
    case 'GaussianDropout':
      if (!(rate > 0 && rate < 1)) return undefined;
      return tf.tidy(() => tf.mul(input, draws.normal(input.shape, 1, Math.sqrt(rate / (1 - rate)))));
    case 'AlphaDropout': {
      if (!(rate > 0 && rate < 1)) return undefined;
      const alphaP = -ALPHA * SCALE;
      // Each value is kept with probability 1 - rate, else set to alphaP; then an affine map restores mean and variance.
      const a = ((1 - rate) * (1 + rate * alphaP ** 2)) ** -0.5;
      const b = -a * alphaP * rate;
      return tf.tidy(() => {
        const kept = tf.cast(tf.greaterEqual(draws.uniform(l.noiseShape || input.shape), rate), 'float32');
        const x = tf.add(tf.mul(input, kept), tf.mul(tf.add(kept, -1), alphaP));
        return tf.add(tf.mul(x, a), b);
      });
    }
    default:
      return undefined;
  }
}

/** Draws seeded by `seed` (tfjs's `tf.randomNormal` and `tf.randomUniform`): the same seed, the same noise. */
export function seededDraws(seed: number): NoiseDraws {
  return {
    normal: (shape, mean, std) => tf.randomNormal(shape, mean, std, 'float32', seed),
    uniform: (shape) => tf.randomUniform(shape, 0, 1, 'float32', seed),
  };
}
