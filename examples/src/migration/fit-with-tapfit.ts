// One program, two ways: an MNIST convnet trained with tfjs's model.fit
// (fit-with-tfjs.ts) and with tapfit's Trainer plus two plugins (fit-with-tapfit.ts).
// `diff` the two files: the switch changes three lines; the plugins add the lines marked
// `// plugin`. Run either: node examples/dist/src/migration/<file>.js
import * as tf from '@tensorflow/tfjs';
import { selectBackend, Trainer } from '@tapfit/core';
import { onlineNorm } from '@tapfit/plugin-onlinenorm'; // plugin
import { labelSmoothing } from '@tapfit/example-plugin-label-smoothing'; // plugin
import { loadMnist } from '../data/mnist';

export interface RunOptions {
  samples?: number;
  testSamples?: number;
  epochs?: number;
  verbose?: 0 | 1;
}

function buildModel(): tf.Sequential {
  const model = tf.sequential();
  model.add(tf.layers.conv2d({ inputShape: [28, 28, 1], filters: 16, kernelSize: 3, activation: 'relu' }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.conv2d({ filters: 32, kernelSize: 3, activation: 'relu' }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.maxPooling2d({ poolSize: 2 }));
  model.add(tf.layers.flatten());
  model.add(tf.layers.dense({ units: 10, activation: 'softmax' }));
  return model;
}

export async function main(options: RunOptions = {}) {
  await selectBackend();
  const { train, test } = loadMnist({ train: options.samples ?? 6000, test: options.testSamples ?? 1000, seed: 1 });
  const [trainLabels, testLabels] = [tf.oneHot(train.y, 10), tf.oneHot(test.y, 10)];
  const model = buildModel();
  const plugins = [onlineNorm(), labelSmoothing({ epsilon: 0.05 })]; // plugin
  const trainer = new Trainer({ model, optimizer: 'adam', loss: 'categoricalCrossentropy', metrics: ['accuracy'], plugins });
  const history = await trainer.fit(train.x, trainLabels, {
    epochs: options.epochs ?? 3,
    batchSize: 64,
    validationData: [test.x, testLabels],
    callbacks: tf.callbacks.earlyStopping({ monitor: 'val_acc', patience: 2 }),
    verbose: options.verbose,
  });
  console.log(`validation accuracy after each epoch: ${history.history.val_acc.join(', ')}`);
  tf.dispose([trainLabels, testLabels]);
  train.dispose();
  test.dispose();
  return history;
}

if (require.main === module) void main();
