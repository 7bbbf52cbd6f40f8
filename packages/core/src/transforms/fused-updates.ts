import * as tf from '@tensorflow/tfjs';
import { ADAM_MOMENTS_KERNEL, SCALED_SUM_KERNEL, type AdamCoefficients } from './fused-update-kernels';

/**
 * Element-wise update arithmetic of the step transforms, as one kernel where the active
 * backend registers it (wasm with its fast kernels: one pass over memory instead of
 * three to five) and as the same tf.mul / tf.add chain otherwise. Both round every
 * intermediate to float32 in the same order, so the values are the same either way,
 * except that wasm's fused kernels store subnormal results (|x| < 2^-126) as zero:
 * wasm has no flush-to-zero mode and subnormal arithmetic is about 24x slower there
 * (kernels/update.ts). The transforms stay pure: these are ops that return new tensors.
 */

/** a x + b y (x, y of one shape). */
export function scaledSum(x: tf.Tensor, a: number, y: tf.Tensor, b: number): tf.Tensor {
  if (fusable(SCALED_SUM_KERNEL, [x, y])) return runner!(SCALED_SUM_KERNEL, { x, y }, { a, b }) as tf.Tensor;
  return tf.add(a === 1 ? x : tf.mul(x, a), b === 1 ? y : tf.mul(y, b));
}

/**
 * Adam's new moments and direction: mu' = b1 mu + (1 - b1) g, nu' = b2 nu + (1 - b2) g^2,
 * direction = mu' muScale / (sqrt(nu' nuScale) + eps).
 */
export function adamMoments(g: tf.Tensor, mu: tf.Tensor, nu: tf.Tensor, c: AdamCoefficients): { mu: tf.Tensor; nu: tf.Tensor; direction: tf.Tensor } {
  if (fusable(ADAM_MOMENTS_KERNEL, [g, mu, nu])) {
    const [m, v, direction] = runner!(ADAM_MOMENTS_KERNEL, { g, mu, nu }, { ...c }) as tf.Tensor[];
    return { mu: m, nu: v, direction };
  }
  const m = tf.add(tf.mul(mu, c.b1), tf.mul(g, 1 - c.b1));
  const v = tf.add(tf.mul(nu, c.b2), tf.mul(tf.square(g), 1 - c.b2));
  return { mu: m, nu: v, direction: tf.div(tf.mul(m, c.muScale), tf.add(tf.sqrt(tf.mul(v, c.nuScale)), c.eps)) };
}

type KernelRunner = (kernel: string, inputs: tf.NamedTensorMap, attrs: tf.NamedAttrMap) => tf.Tensor | tf.Tensor[];
let runner: KernelRunner | null = null;

/**
 * How to run a kernel by name: the backend layer, which registers the fused kernels,
 * hands over its engine call (tfjs has no public op for a custom kernel).
 */
export function useKernelRunner(run: KernelRunner): void {
  runner = run;
}

function fusable(kernel: string, ts: tf.Tensor[]): boolean {
  return runner != null && tf.getKernel(kernel, tf.getBackend()) != null && ts.every((t) => t.dtype === 'float32' && tf.util.arraysEqual(t.shape, ts[0].shape));
}
