import * as tf from '@tensorflow/tfjs';
import { runKernel } from '../engine-internals';
import { composite, kernelConfig } from '../wasm-shim/kernel-calls';
import type { Overrides } from '../wasm-shim/overrides';
import { runElementwise } from './elementwise';
import { previousKernel } from './previous-kernel';
import { heapFor } from './wasm-heap';

/** dy step(x) in one kernel (kernels/elementwise.ts). */
export const RELU_GRAD_KERNEL = 'TapfitReluGrad';

/**
 * Relu and its gradient in one pass each on wasm.
 *
 * - Relu: the values of tfjs-backend-wasm's (XNNPACK's clamp) bit for bit, except that
 *   NaN stays NaN (nan-propagation.ts), on tapfit's threads: XNNPACK's pool spins for milliseconds after each of its operations and
 *   takes a core from tapfit's helper threads (docs/backends.md §3).
 * - The gradient: tfjs computes mul(dy, cast(step(x))), a Step kernel then a Multiply,
 *   two passes over every activation (about 1.4 ms of the MNIST CNN's 35 ms step). It is
 *   registered for every backend while the fast kernels are installed: where the kernel
 *   is missing (cpu, tensorflow, other dtypes or shapes) it runs tfjs's own ops, so only
 *   wasm changes. The kernel's own gradient (for a second derivative) is itself towards
 *   dy, zero towards x, as for tfjs's ops.
 */
export function installRelu(o: Overrides): void {
  const previousRelu = previousKernel('Relu');
  o.kernel(kernelConfig('Relu', 'wasm', (args) => {
    const { x } = args.inputs;
    const heap = heapFor(args.backend);
    if (!heap || x.dtype !== 'float32') return previousRelu(args);
    const out = heap.output(x.shape);
    const [to, from] = [heap.offset(out), heap.offset(x)];
    runElementwise(heap, 'relu', tf.util.sizeFromShape(x.shape), (start, n) => [to + 4 * start, from + 4 * start, n]);
    return out;
  }));
  o.kernel(kernelConfig(RELU_GRAD_KERNEL, 'wasm', ({ inputs: { dy, x }, backend }) => {
    const heap = heapFor(backend);
    if (!heap) return composite(backend, 'wasm', (k) => k.run('Multiply', { a: dy, b: k.run('Step', { x }, { alpha: 0 }) }));
    const out = heap.output(dy.shape);
    const [to, g, v] = [heap.offset(out), heap.offset(dy), heap.offset(x)];
    runElementwise(heap, 'reluGrad', tf.util.sizeFromShape(dy.shape), (from, n) => [to + 4 * from, g + 4 * from, v + 4 * from, n]);
    return out;
  }));
  o.gradient({ kernelName: 'Relu', inputsToSave: ['x'], gradFunc: (dy, saved) => ({ x: () => reluGrad(dy as tf.Tensor, saved[0]) }) });
  o.gradient({ kernelName: RELU_GRAD_KERNEL, inputsToSave: ['x'], gradFunc: (ddy, saved) => ({ dy: () => reluGrad(ddy as tf.Tensor, saved[0]), x: () => tf.zerosLike(saved[0]) }) });
}

function reluGrad(dy: tf.Tensor, x: tf.Tensor): tf.Tensor {
  const fused = tf.getKernel(RELU_GRAD_KERNEL, tf.getBackend()) != null && heapFor(tf.backend()) != null && dy.dtype === 'float32' && x.dtype === 'float32' && tf.util.arraysEqual(dy.shape, x.shape);
  return fused ? (runKernel(RELU_GRAD_KERNEL, { dy, x }, {}) as tf.Tensor) : tf.mul(dy, tf.cast(tf.step(x), 'float32'));
}
