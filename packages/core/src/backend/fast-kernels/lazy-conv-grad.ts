import * as tf from '@tensorflow/tfjs';
import { conv2dThenBias, type FusedConv2d, type FusedConv2dArgs } from '../wasm-shim/dilated-fused-conv';
import type { Overrides } from '../wasm-shim/overrides';

/**
 * tfjs-layers' Conv2D with a bias calls `tf.fused.conv2d`. With a linear activation tfjs
 * runs it as one kernel with a custom gradient, which computes the gradients of all its
 * inputs as soon as the backward pass reaches it: for a network's first layer that
 * includes the gradient of the input, which nothing reads, a whole transposed
 * convolution (on the MNIST CNN at batch 64 about as long as the layer's forward). On
 * wasm that case runs as `conv2d` + `add` instead, whose gradients tfjs computes only for
 * the inputs on the path: every other layer does the same kernels plus one bias add.
 * With or without a tape alike, so that a forward gives the same values in both (the
 * memory executor runs segments untaped and recomputes them under a tape).
 */
export function installLazyConvGradients(o: Overrides): void {
  const fused = tf.fused as unknown as { conv2d: FusedConv2d };
  const original = fused.conv2d;
  const lazy = (args: FusedConv2dArgs) => (lazyCase(args) ? conv2dThenBias(args) : original(args));
  o.replace(fused, 'conv2d', lazy as FusedConv2d);
}

function lazyCase(args: FusedConv2dArgs): boolean {
  return (args.activation ?? 'linear') === 'linear' && (args.dataFormat ?? 'NHWC') === 'NHWC' && tf.getBackend() === 'wasm';
}
