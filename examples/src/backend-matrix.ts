import * as tf from '@tensorflow/tfjs';
import { sgd } from '@tapfit/core';
import type { ConformanceSpec } from '@tapfit/core/testing';
import { labelSmoothing } from '@tapfit/example-plugin-label-smoothing';
import { adaptiveBrakingPlugin, brakesPlugin, delayedGradients } from '@tapfit/plugin-brakes';
import { lora } from '@tapfit/plugin-lora';
import { onlineNorm } from '@tapfit/plugin-onlinenorm';

/**
 * Every plugin on every backend: each entry is a plugin with the model and
 * options of its package's conformance suite. `test/backend-matrix.test.ts`
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

/** dense - BN - tanh - dense - BN - dense, seeded: the model of plugin-onlinenorm's conformance suite. */
function batchNormModel(): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 8, inputShape: [4], kernelInitializer: init(1), name: 'd1' }),
      tf.layers.batchNormalization({ name: 'bn1' }),
      tf.layers.activation({ activation: 'tanh', name: 'act' }),
      tf.layers.dense({ units: 6, kernelInitializer: init(2), name: 'd2' }),
      tf.layers.batchNormalization({ name: 'bn2' }),
      tf.layers.dense({ units: 3, kernelInitializer: init(3), name: 'out' }),
    ],
  });
}

export const PLUGIN_MATRIX: readonly MatrixEntry[] = [
  { name: 'lora', plugin: () => lora({ targets: 'hidden', rank: 2, alpha: 4, seed: 7, modulesToSave: 'out' }) },
  { name: 'online-norm', plugin: () => onlineNorm({ alphaFwd: 0.99, alphaBkw: 0.9 }), trainer: () => ({ model: batchNormModel() }) },
  { name: 'adaptive-braking', plugin: () => adaptiveBrakingPlugin({ rho: 1 }), trainer: () => ({ optimizer: momentum() }) },
  { name: 'delayed-gradients', plugin: () => delayedGradients({ delay: 3 }), trainer: () => ({ optimizer: momentum() }) },
  { name: 'brakes', plugin: () => brakesPlugin({ delay: 2, rho: 1 }), trainer: () => ({ optimizer: momentum() }) },
  { name: 'label-smoothing', plugin: () => labelSmoothing({ epsilon: 0.1 }) },
];
