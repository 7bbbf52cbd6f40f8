import * as tf from '@tensorflow/tfjs';
import { tensorData, type TensorData } from '../data/tensor-data';
import type { TapfitPlugin } from '../plugin/types';
import { SilentLogger } from '../services/defaults';
import { sgd } from '../transforms/optimizers';
import { Trainer, type TrainerOptions } from '../train/trainer';

/** A small seeded 3-class problem: Gaussian blobs in `dims` dimensions (x [n, dims], y int32 [n]). */
export function blobData(n = 96, options: { dims?: number | undefined; seed?: number | undefined } = {}): TensorData {
  const dims = options.dims ?? 4;
  const labels = tf.tensor1d(Array.from({ length: n }, (_, i) => i % 3), 'int32');
  const x = tf.tidy(() => {
    const centres = tf.tensor2d(Array.from({ length: 3 }, (_, c) => Array.from({ length: dims }, (_, d) => (d === c ? 2 : 0))));
    return tf.add(tf.gather(centres, labels), tf.randomNormal([n, dims], 0, 0.5, 'float32', options.seed ?? 1));
  });
  return tensorData(x, labels);
}

/** A seeded dense-tanh-dense classifier (deterministic weights). */
export function tinyModel(options: { inputs?: number | undefined; hidden?: number | undefined; seed?: number | undefined } = {}): tf.Sequential {
  const seed = options.seed ?? 1;
  return tf.sequential({
    layers: [
      tf.layers.dense({ inputShape: [options.inputs ?? 4], units: options.hidden ?? 8, activation: 'tanh', kernelInitializer: tf.initializers.glorotUniform({ seed }), name: 'hidden' }),
      tf.layers.dense({ units: 3, kernelInitializer: tf.initializers.glorotUniform({ seed: seed + 1 }), name: 'out' }),
    ],
  });
}

/**
 * A seeded classifier with two BatchNorm layers for the kit's blob data: Dense 'd1' (4 -> 8),
 * BatchNorm 'bn1', tanh 'act', Dense 'd2' (8 -> 6), BatchNorm 'bn2', Dense 'out' (6 -> 3).
 * For plugins that act on normalisation layers (and for composing them with others).
 */
export function batchNormModel(): tf.Sequential {
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

/** Complete trainer options: `tinyModel`, softmax cross-entropy, SGD + momentum, silent; `overrides` win. */
export function testTrainerOptions(overrides: Partial<TrainerOptions> = {}): TrainerOptions {
  return {
    model: overrides.model ?? tinyModel(),
    loss: 'softmaxCrossEntropy',
    optimizer: overrides.optimizer ?? sgd({ lr: 0.1, momentum: 0.9 }),
    logger: new SilentLogger(),
    ...overrides,
  };
}

/**
 * A trainer whose dispose() also frees the model testTrainer built for it: a trainer leaves
 * the model in its options to the caller, and a test's caller never saw that one.
 */
class TestTrainer extends Trainer {
  constructor(
    options: TrainerOptions,
    private builtModel?: tf.LayersModel,
  ) {
    super(options);
  }

  override dispose(): void {
    super.dispose();
    this.builtModel?.dispose();
    this.builtModel = undefined;
  }
}

/**
 * A silent trainer over `tinyModel` with SGD + momentum, for plugin tests. Its dispose()
 * frees the `tinyModel` it built (a model passed in stays the caller's), so a leak check
 * around testTrainer + dispose sees only the plugin.
 */
export function testTrainer(overrides: Partial<TrainerOptions> = {}): Trainer {
  const options = testTrainerOptions(overrides);
  return new TestTrainer(options, overrides.model ? undefined : (options.model as tf.LayersModel));
}

/**
 * A plugin that taps every hook and changes nothing (values pass through). Composing
 * with it must not change a plugin's results; its taps sit at every stage band edge.
 */
export function noopPlugin(name = 'noop', stage = 0): TapfitPlugin {
  return {
    name,
    core: '*',
    apply({ hooks }) {
      const o = { stage };
      hooks.setup.tap(o, () => {});
      hooks.planMemory.tap(o, (plan) => plan);
      hooks.stepTransforms.tap(o, (ts) => ts);
      hooks.fitStart.tap(o, () => {});
      hooks.epochStart.tap(o, () => {});
      hooks.batchStart.tap(o, () => {});
      hooks.forward.tap(o, (f) => f);
      hooks.backward.tap(o, (g) => g);
      hooks.batchEnd.tap(o, () => {});
      hooks.epochEnd.tap(o, () => {});
      hooks.fitEnd.tap(o, () => {});
    },
  };
}
