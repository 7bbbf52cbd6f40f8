import * as tf from '@tensorflow/tfjs';
import { dataParallel, SilentLogger, sgd, tensorData, type TapfitPlugin, type TensorData, type TrainerOptions } from '@tapfit/core';
import { batchNormModel } from '@tapfit/core/testing';
import { adaptiveBrakingPlugin, brakesPlugin } from '@tapfit/plugin-brakes';
import { lora } from '@tapfit/plugin-lora';
import { onlineNorm } from '@tapfit/plugin-onlinenorm';
import { pipeline } from '@tapfit/plugin-pipeline';
import { revBiFPN, revsilo } from '@tapfit/plugin-revsilo';

/**
 * The five plugin packages and core's opt-in dataParallel composed on one trainer
 * (docs/composition.md): what each brings to a composition, and tiny models to run the
 * compositions on. `test/composition-matrix.test.ts` runs every pair and the largest sets
 * that make sense.
 */
export const PACKAGES = ['lora', 'online-norm', 'brakes', 'revsilo', 'pipeline', 'data-parallel'] as const;
export type PackageKey = (typeof PACKAGES)[number];

/** Samples per epoch and batch size: 10 steps an epoch, 20 steps in two. */
export const SAMPLES = 40;
export const BATCH = 4;

/** The kit's dense - BN - tanh - dense - BN - dense on 4 features, 3 classes (seeded): what online-norm, LoRA and pipeline act on. */
export const batchNormMlp = batchNormModel;

/** dense - tanh - dense - dense on 4 features, 3 classes (seeded), without BatchNorm: dataParallel splits the batch, which BatchNorm would see. */
export function plainMlp() {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.dense({ name: 'd1', inputShape: [4], units: 8, activation: 'tanh', kernelInitializer: init(1) }),
      tf.layers.dense({ name: 'd2', units: 8, activation: 'tanh', kernelInitializer: init(2) }),
      tf.layers.dense({ name: 'd3', units: 3, kernelInitializer: init(3) }),
    ],
  });
}

/** The smallest RevBiFPN that has a RevSilo: two streams (4x4 and 2x2 after the stem) on 16x16 grey images, 3 classes. */
export function tinyRevBiFPN() {
  return revBiFPN({ width: 0.25, streams: 2, extensions: 0, inputSize: 16, inputChannels: 1, classes: 3, dropout: 0, seed: 3 });
}

/** Seeded 3-class data shaped for the model: blobs in 4-D, or images whose mean depends on the class. */
export function compositionData(reversible: boolean): TensorData {
  const labels = tf.tensor1d(Array.from({ length: SAMPLES }, (_, i) => i % 3), 'int32');
  const x = tf.tidy(() => {
    if (!reversible) {
      const centres = tf.tensor2d([[2, 0, 0, 0], [0, 2, 0, 0], [0, 0, 2, 0]]);
      return tf.add(tf.gather(centres, labels), tf.randomNormal([SAMPLES, 4], 0, 0.5, 'float32', 1));
    }
    const offset = tf.reshape(tf.cast(labels, 'float32'), [SAMPLES, 1, 1, 1]);
    return tf.add(tf.randomNormal([SAMPLES, 16, 16, 1], 0, 1, 'float32', 2), offset);
  });
  return tensorData(x, labels);
}

/** Everything one run of a composition needs; every call builds fresh, identically initialised parts. */
export interface Composition {
  /** Uses the reversible model (revsilo in the set). */
  readonly reversible: boolean;
  options(): TrainerOptions;
  data(): TensorData;
}

/**
 * The plugin each package contributes, given the rest of the set:
 * - lora: rank-2 adapters on every hidden 2-D weight (layers on the MLP, segments on RevBiFPN), the head trained in full;
 * - online-norm: replaces the MLP's BatchNorms;
 * - brakes: Adaptive Braking under a 2-step gradient delay, or, pipelined, Adaptive Braking
 *   alone (the pipeline supplies the delay: a second delay is a declared conflict);
 * - revsilo: plans RevBiFPN's reversible segments 'invert';
 * - pipeline: two stages split before 'd2' with Linear Weight Prediction (velocity form);
 * - data-parallel: each batch split between the main thread and one worker (cpu), on a
 *   MLP without BatchNorm.
 */
export function pluginFor(key: PackageKey, set: readonly PackageKey[]): TapfitPlugin {
  switch (key) {
    case 'lora':
      return lora({ targets: 'all-linear', rank: 2, modulesToSave: 'output', seed: 7 });
    case 'online-norm':
      return onlineNorm({ alphaFwd: 0.99, alphaBkw: 0.9 });
    case 'brakes':
      return set.includes('pipeline') ? adaptiveBrakingPlugin({ rho: 1 }) : brakesPlugin({ delay: 2, rho: 1 });
    case 'revsilo':
      return revsilo();
    case 'pipeline':
      return pipeline({ boundaries: ['d2'], prediction: 'lwp-velocity' });
    case 'data-parallel':
      return dataParallel({ replicas: 2, backend: 'cpu' });
  }
}

/** A composition of the given packages on the model they act on (RevBiFPN with revsilo, the plain MLP with dataParallel, else the BatchNorm MLP). */
export function composition(set: readonly PackageKey[]): Composition {
  const reversible = set.includes('revsilo');
  return {
    reversible,
    options: () => ({
      model: reversible ? tinyRevBiFPN() : set.includes('data-parallel') ? plainMlp() : batchNormMlp(),
      loss: 'softmaxCrossEntropy',
      optimizer: sgd({ lr: 0.05, momentum: 0.9 }),
      plugins: set.map((k) => pluginFor(k, set)),
      logger: new SilentLogger(),
      seed: 5,
    }),
    data: () => compositionData(reversible),
  };
}
