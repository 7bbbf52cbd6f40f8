// Journey: compose plugins in your own trainer, in code (examples/journeys/compose-in-code/README.md).
import * as tf from '@tensorflow/tfjs';
import { ConsoleLogger, selectBackend, sgd, Stage, TensorData, Trainer, type BackendPreference, type Logger, type TapfitPlugin } from '@tapfit/core';
import { adaptiveBrakingPlugin } from '@tapfit/plugin-brakes';
import { lora } from '@tapfit/plugin-lora';
import { onlineNorm } from '@tapfit/plugin-onlinenorm';
import { mnistArrays } from '../../src/data/mnist';

export interface ComposeOptions {
  /** Digits per task for training (each task: 0-4, then 5-9); default 3000. */
  train?: number;
  /** Digits per task for testing; default 500. */
  test?: number;
  /** Epochs per phase; default 2. */
  epochs?: number;
  backend?: BackendPreference;
  logger?: Logger;
}

export interface ComposeResult {
  /** Accuracy on held-out digits 0-4 after pretraining. */
  pretrained: number;
  /** Accuracy on held-out digits 5-9: before finetuning (never seen), after, and after merging the adapter. */
  newTask: { before: number; after: number; merged: number };
  /** Accuracy on digits 0-4 after finetuning on 5-9. */
  oldTaskAfter: number;
  /** Parameters each phase trains. */
  trainable: { pretrain: number; finetune: number };
  /** The global gradient norm every 10 steps of pretraining (the inline plugin's record). */
  gradientNorms: number[];
}

/** Your own model: a small CNN with a BatchNorm after each conv (online-norm swaps them). */
function cnn(): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 8, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(1), name: 'conv1' }),
      tf.layers.batchNormalization({ name: 'norm1' }),
      tf.layers.reLU({ name: 'relu1' }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool1' }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', useBias: false, kernelInitializer: init(2), name: 'conv2' }),
      tf.layers.batchNormalization({ name: 'norm2' }),
      tf.layers.reLU({ name: 'relu2' }),
      tf.layers.maxPooling2d({ poolSize: 2, name: 'pool2' }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ units: 64, activation: 'relu', kernelInitializer: init(3), name: 'fc' }),
      tf.layers.dense({ units: 10, kernelInitializer: init(4), name: 'head' }),
    ],
  });
}

/** Digits whose label passes `keep`, split into train and test (seeded, disjoint). */
function task(keep: (label: number) => boolean, train: number, test: number): { train: TensorData; test: TensorData } {
  const { pixels, labels } = mnistArrays();
  const picked = [...labels.keys()].filter((i) => keep(labels[i]));
  if (picked.length < train + test) throw new Error(`compose-in-code: asked for ${train + test} digits of a task, only ${picked.length} exist.`);
  // A fixed shuffle (a linear congruential sequence), so every run sees the same split.
  let s = 7;
  for (let i = picked.length - 1; i > 0; i--) {
    s = (s * 1103515245 + 12345) % 2 ** 31;
    const j = s % (i + 1);
    [picked[i], picked[j]] = [picked[j], picked[i]];
  }
  const take = (from: number, count: number) => {
    const x = new Float32Array(count * 784);
    const y = new Int32Array(count);
    picked.slice(from, from + count).forEach((j, i) => {
      x.set(pixels.subarray(j * 784, (j + 1) * 784), i * 784);
      y[i] = labels[j];
    });
    return new TensorData(tf.tensor(x, [count, 28, 28, 1]), tf.tensor1d(y, 'int32'));
  };
  return { train: take(0, train), test: take(train, test) };
}

/**
 * A plugin of your own, inline: records the global gradient norm every `every` steps. It
 * taps `backward` in the REPORT band, after every plugin that changes gradients, and hands
 * them on unchanged; it reads one number back only on the steps it records.
 */
function gradientNormLog(every: number, norms: number[]): TapfitPlugin {
  return {
    name: 'gradient-norm-log',
    core: '^0.1.0',
    apply({ hooks }) {
      hooks.backward.tap({ stage: Stage.REPORT }, (grads, info) => {
        if (grads && info.step % every === 0) norms.push(Math.sqrt(tf.addN(Object.values(grads).map((g) => tf.sum(tf.square(g)))).dataSync()[0]));
        return grads;
      });
    },
  };
}

/**
 * Pretrain your CNN on digits 0-4 with Online Normalization in place of its BatchNorms,
 * Adaptive Braking on the momentum and a plugin of your own; then LoRA-finetune the trained
 * network on digits 5-9 (adapters on 'fc', the head trained in full) and merge the adapter.
 */
export async function composePlugins(options: ComposeOptions = {}): Promise<ComposeResult> {
  const log = options.logger ?? new ConsoleLogger();
  const { train = 3000, test = 500, epochs = 2 } = options;
  await selectBackend(options.backend ?? 'auto', { log: (line) => log.info(line) });
  const oldTask = task((d) => d < 5, train, test);
  const newTask = task((d) => d >= 5, train, test);
  const model = cnn();
  const gradientNorms: number[] = [];

  // Phase 1: three plugins on one trainer. Their order is theirs to resolve (online-norm
  // swaps layers at setup, Adaptive Braking replaces the chain's momentum, the logger
  // observes last); trainer.describe() shows it.
  const pretrain = new Trainer({
    model,
    loss: 'softmaxCrossEntropy',
    optimizer: sgd({ lr: 0.05, momentum: 0.9 }),
    metrics: ['accuracy'],
    plugins: [onlineNorm(), adaptiveBrakingPlugin({ rho: 1 }), gradientNormLog(10, gradientNorms)],
    logger: log,
    seed: 1,
  });
  await pretrain.setup();
  pretrain.describe();
  await pretrain.fit(oldTask.train, { epochs, batchSize: 32 });
  const pretrained = (await pretrain.evaluate(oldTask.test)).acc;
  log.info(`pretrained on digits 0-4: accuracy ${(pretrained * 100).toFixed(1)}% on held-out 0-4`);

  // Phase 2: LoRA on the network phase 1 trained (its OnlineNorm layers come along).
  const adapters = lora({ targets: 'fc', rank: 4, modulesToSave: 'head', seed: 1 });
  const finetune = new Trainer({
    model: pretrain.model.layersModel!,
    loss: 'softmaxCrossEntropy',
    optimizer: sgd({ lr: 0.05, momentum: 0.9 }),
    metrics: ['accuracy'],
    plugins: [adapters, adaptiveBrakingPlugin({ rho: 1 })],
    logger: log,
    seed: 1,
  });
  await finetune.setup();
  finetune.describe();
  const before = (await finetune.evaluate(newTask.test)).acc;
  await finetune.fit(newTask.train, { epochs, batchSize: 32 });
  const after = (await finetune.evaluate(newTask.test)).acc;
  const oldTaskAfter = (await finetune.evaluate(oldTask.test)).acc;
  // The plugin's handle is the trained LoRA model: fold the adapter in for inference.
  adapters.lora.merge();
  const merged = (await finetune.evaluate(newTask.test)).acc;
  log.info(`finetuned on digits 5-9 with LoRA: ${(before * 100).toFixed(1)}% -> ${(after * 100).toFixed(1)}% on held-out 5-9 (merged: ${(merged * 100).toFixed(1)}%); digits 0-4 now ${(oldTaskAfter * 100).toFixed(1)}%`);

  const trainable = { pretrain: pretrain.describe({ print: false }).trainableParams, finetune: finetune.describe({ print: false }).trainableParams };
  finetune.dispose();
  pretrain.dispose();
  model.dispose();
  for (const d of [oldTask.train, oldTask.test, newTask.train, newTask.test]) d.dispose();
  return { pretrained, newTask: { before, after, merged }, oldTaskAfter, trainable, gradientNorms };
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  composePlugins(quick ? { train: 400, test: 200, epochs: 1 } : {}).catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
