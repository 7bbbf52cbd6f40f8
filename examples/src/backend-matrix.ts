import * as tf from '@tensorflow/tfjs';
import { segmentModel, sgd, tensorData, type Segment, type TrainableModel } from '@tapfit/core';
import { batchNormModel, type ConformanceSpec } from '@tapfit/core/testing';
import { labelSmoothing } from '@tapfit/example-plugin-label-smoothing';
import { adaptiveBrakingPlugin, brakesPlugin, delayedGradients } from '@tapfit/plugin-brakes';
import { lora } from '@tapfit/plugin-lora';
import { onlineNorm } from '@tapfit/plugin-onlinenorm';
import { pipeline } from '@tapfit/plugin-pipeline';
import { coupling, diceCrossEntropy, revBiFPN, reversibleUNet3d, revsilo, transform } from '@tapfit/plugin-revsilo';

/**
 * Every plugin on every backend: each entry is a plugin with the model and
 * options of its package's conformance suite. revsilo's conformance model has
 * dense transforms only, so two small variants of its own convolutional models
 * follow it (depthwise convolutions 2-D and 3-D, space-to-depth, bilinear
 * upsampling, the 3-D U-Net's convolutions). `test/backend-matrix.test.ts`
 * trains each for 5 steps on cpu, wasm and webgpu (when present) and compares
 * the first step's gradients with cpu; `npm run gpu-check` runs one step of
 * each on the GPU. To add a plugin, add its package to this package's
 * dependencies and an entry here with the spec its conformance test uses.
 */
export interface MatrixEntry extends ConformanceSpec {
  /** Shown in test names and in the gpu-check report. */
  name: string;
}

const momentum = () => sgd({ lr: 0.05, momentum: 0.9 });


/** A seeded normal variable, named by tfjs (unique in the process: other tests' variables may still be alive). */
function seededVariable(shape: number[], stddev: number, seed: number, owned: tf.Variable[]): tf.Variable {
  const v = tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, stddev, 'float32', seed)));
  owned.push(v);
  return v;
}

/**
 * plugin-revsilo's conformance model: the kit's blob data through a dense lift 4 -> 8,
 * three additive couplings (F, G = tanh(x W) on the 4-channel halves) and a dense head.
 */
function couplingNet(): TrainableModel & { dispose(): void } {
  const owned: tf.Variable[] = [];
  const dense = (name: string, din: number, dout: number, seed: number): Segment => {
    const w = seededVariable([din, dout], 1 / Math.sqrt(din), seed, owned);
    return { name, params: [w], forward: ([x]) => [tf.matMul(x, w)] };
  };
  const tanhOf = (name: string, seed: number) => {
    const w = seededVariable([4, 4], 0.5, seed, owned);
    return transform(name, (x) => tf.tanh(tf.matMul(x, w)), [w]);
  };
  const blocks = [0, 1, 2].map((i) => coupling({ name: `coupling${i}`, f: tanhOf(`F${i}`, 10 + i), g: tanhOf(`G${i}`, 20 + i) }));
  const model = segmentModel([dense('lift', 4, 8, 1), ...blocks, dense('head', 8, 3, 2)], { inputShape: [4], outputShape: [3] });
  return { ...model, dispose: () => tf.dispose(owned) };
}

/** 8 seeded 32x32 RGB images, labels 0, 1, 2, 0, ... */
function images() {
  return tensorData(tf.randomNormal([8, 32, 32, 3], 0, 1, 'float32', 1), tf.tensor1d(Array.from({ length: 8 }, (_, i) => i % 3), 'int32'));
}

/** 4 seeded 8^3 one-channel volumes, 3 voxel classes. */
function volumes() {
  return tensorData(tf.randomNormal([4, 8, 8, 8, 1], 0, 1, 'float32', 2), tf.randomUniform([4, 8, 8, 8], 0, 3, 'int32', 3));
}

export const PLUGIN_MATRIX: readonly MatrixEntry[] = [
  { name: 'lora', plugin: () => lora({ targets: 'hidden', rank: 2, alpha: 4, seed: 7, modulesToSave: 'out' }) },
  { name: 'online-norm', plugin: () => onlineNorm({ alphaFwd: 0.99, alphaBkw: 0.9 }), trainer: () => ({ model: batchNormModel() }) },
  { name: 'adaptive-braking', plugin: () => adaptiveBrakingPlugin({ rho: 1 }), trainer: () => ({ optimizer: momentum() }) },
  { name: 'delayed-gradients', plugin: () => delayedGradients({ delay: 3 }), trainer: () => ({ optimizer: momentum() }) },
  { name: 'brakes', plugin: () => brakesPlugin({ delay: 2, rho: 1 }), trainer: () => ({ optimizer: momentum() }) },
  { name: 'label-smoothing', plugin: () => labelSmoothing({ epsilon: 0.1 }) },
  { name: 'revsilo', plugin: () => revsilo(), trainer: () => ({ model: couplingNet() }) },
  // 3 streams (8x8, 4x4, 2x2 after the stem), one extension: reversible MBConv couplings
  // and RevSilos with depthwise 3x3 to 7x7 at strides 1, 2 and 4, squeeze-excite,
  // space-to-depth, bilinear upsampling, batch norm. Plain float32 (fixedPoint: 0) in both
  // revsilo models: the builders' exact arithmetic rounds to a grid, which turns two
  // backends' last-bit differences into whole grid steps; the matrix compares the kernels.
  {
    name: 'revsilo revbifpn',
    plugin: () => revsilo(),
    trainer: () => ({ model: revBiFPN({ width: 0.25, streams: 3, extensions: 1, inputSize: 32, classes: 3, dropout: 0, fixedPoint: 0 }) }),
    data: images,
    batchSize: 4,
  },
  // Two levels, one reversible 3-D MBConv block each way: depthwise 3x3x3 and 3x3x3
  // convolutions (by depth slices), the 2x2x2 transposed convolution, instance norm.
  {
    name: 'revsilo unet3d',
    plugin: () => revsilo(),
    trainer: () => ({ model: reversibleUNet3d({ levels: 2, blocksPerLevel: 1, baseChannels: 4, expandRatio: 2, classes: 3, inputSize: 8, fixedPoint: 0 }), loss: diceCrossEntropy({ classes: 3 }) }),
    data: volumes,
    batchSize: 2,
  },
  { name: 'pipeline', plugin: () => pipeline({ stages: 2, compensation: 'sc', prediction: 'lwp-velocity' }) },
];
