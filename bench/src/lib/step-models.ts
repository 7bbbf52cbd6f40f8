import * as tf from '@tensorflow/tfjs';
import { mlp, mnistCnn } from '@tapfit/examples';

/** The three training workloads of the backend and profile benchmarks. */
export interface StepModel {
  name: string;
  label: string;
  batch: number;
  inputShape: number[];
  build(): tf.Sequential;
  /** Multiply-adds x 2 that one SGD training step needs (forward, dx where needed, dW), for effective GFLOP/s. */
  stepFlops: number;
}

/** Dense chain: forward 2MKN per layer, backward dW for every layer and dx for all but the first. */
function denseStepFlops(batch: number, widths: number[]): number {
  let flops = 0;
  for (let i = 0; i + 1 < widths.length; i++) flops += 2 * batch * widths[i] * widths[i + 1] * (i === 0 ? 2 : 3);
  return flops;
}

/** conv16-pool-conv32-pool-dense128-dense10 on 28x28x1: two 3x3 'same' convs, then the dense head. */
function cnnStepFlops(batch: number): number {
  const conv = (hw: number, ci: number, co: number) => 2 * batch * hw * hw * 9 * ci * co;
  // The work a step needs: the first conv's dx is not (tf.fused.conv2d computes it anyway).
  return 2 * conv(28, 1, 16) + 3 * conv(14, 16, 32) + 3 * 2 * batch * 7 * 7 * 32 * 128 + 3 * 2 * batch * 128 * 10;
}

export const STEP_MODELS: StepModel[] = [
  { name: 'mlp', label: 'MLP 784-512-512-10, batch 128', batch: 128, inputShape: [784], build: () => mlp({ seed: 1 }), stepFlops: denseStepFlops(128, [784, 512, 512, 10]) },
  { name: 'cnn', label: 'CNN conv16-pool-conv32-pool-dense128, batch 64', batch: 64, inputShape: [28, 28, 1], build: () => mnistCnn({ seed: 1 }), stepFlops: cnnStepFlops(64) },
  { name: 'mlp-big', label: 'MLP 784-2048-2048-10, batch 256', batch: 256, inputShape: [784], build: () => mlp({ seed: 1, hidden: [2048, 2048] }), stepFlops: denseStepFlops(256, [784, 2048, 2048, 10]) },
];

/** One fixed batch of random inputs and one-hot labels. */
export function fixedBatch(m: StepModel): { x: tf.Tensor; y: tf.Tensor } {
  return tf.tidy(() => ({
    x: tf.randomNormal([m.batch, ...m.inputShape], 0, 1, 'float32', 1),
    y: tf.oneHot(tf.tensor1d(Array.from({ length: m.batch }, (_, i) => i % 10), 'int32'), 10).toFloat(),
  }));
}
