// A plain TF.js program: build, compile, model.fit. Two additions from tapfit: a trainable
// wasm backend (selectBackend) and LoRA finetuning (applyLora, the plugin's functional form).
import * as tf from '@tensorflow/tfjs';
import { selectBackend } from '@tapfit/core';
import { applyLora } from '@tapfit/plugin-lora';

/** 3-class labels from a fixed random linear map of x. */
const labels = (x, seed) => tf.tidy(() => tf.cast(tf.argMax(tf.matMul(x, tf.randomNormal([16, 3], 0, 1, 'float32', seed)), 1), 'float32'));

async function main() {
  await selectBackend(); // wasm + tapfit's training shim here (TAPFIT_BACKEND=cpu to compare)
  const x = tf.randomNormal([512, 16], 0, 1, 'float32', 1);
  const model = tf.sequential({
    layers: [
      tf.layers.dense({ name: 'fc1', inputShape: [16], units: 64, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
      tf.layers.dense({ name: 'head', units: 3, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
    ],
  });
  const compile = (m) => m.compile({ optimizer: tf.train.adam(0.01), loss: 'sparseCategoricalCrossentropy', metrics: ['accuracy'] });
  compile(model);
  await model.fit(x, labels(x, 2), { epochs: 5, batchSize: 32, verbose: 0 }); // pretraining, unchanged tfjs code

  // Finetune on a new task: rank-4 adapters on fc1, the head trained in full, fc1's kernel frozen.
  const lora = applyLora(model, { targets: 'all-linear', rank: 4, modulesToSave: 'output', seed: 1 });
  compile(lora.model);
  const history = await lora.model.fit(x, labels(x, 3), { epochs: 8, batchSize: 32, verbose: 0 });
  console.log(JSON.stringify({ module: 'esm', backend: tf.getBackend(), trainableParams: lora.trainableParams, loss: history.history.loss, acc: history.history.acc }));
}

await main().catch((err) => {
  console.error(err);
  process.exit(1);
});
