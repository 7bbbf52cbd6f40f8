import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import type { Overrides } from './overrides';

/**
 * FusedBatchNorm's gradient with statistics of the input's rank. tfjs 4.22's gradient sums
 * the mean's, variance's, scale's and offset's gradients over the batch only when the mean
 * is a vector; statistics shaped to broadcast ([1, C, 1, 1] against [B, C, H, W]) were
 * reshaped whole to that shape instead, which threw ("Size(216) must match the product of
 * shape 1,3,1,1"). tfjs-layers' BatchNormalization passes that shape for any axis but the
 * last, so a channels-first (axis 1) batch normalisation could not train, on any backend.
 * For those calls each parameter's gradient is summed down to its own shape:
 *
 *   y = (x - mean) r scale + offset, r = 1 / sqrt(variance + eps)
 *   dx = dy scale r, dmean = -dy scale r, dvariance = -dy scale (x - mean) r^3 / 2,
 *   dscale = dy (x - mean) r, doffset = dy
 *
 * Vector statistics keep tfjs's gradient.
 */
export function installBatchNormGrad(o: Overrides): void {
  const stock = tf.getGradient('FusedBatchNorm');
  if (!stock) throw new TapfitError(ErrorCodes.BACKEND, "gradient fixes: no gradient is registered for kernel 'FusedBatchNorm'. Import '@tensorflow/tfjs' (the union package, which registers the gradients), version 4.22.");
  o.gradient({
    kernelName: 'FusedBatchNorm',
    inputsToSave: ['x', 'mean', 'variance', 'scale', 'offset'],
    gradFunc: (dy, saved, attrs) => {
      const [x, mean, variance, scale, offset] = saved;
      if (mean.rank <= 1) return stock.gradFunc(dy, saved.slice(0, 4), attrs);
      const { varianceEpsilon } = attrs as unknown as { varianceEpsilon: number };
      const g = dy as tf.Tensor;
      const r = () => tf.rsqrt(tf.add(variance, varianceEpsilon));
      const scaled = () => (scale ? tf.mul(g, scale) : g);
      const down = (t: tf.Tensor, shape: number[]) => {
        const axes = tf.backend_util.getReductionAxes(shape, t.shape);
        return tf.reshape(axes.length ? tf.sum(t, axes) : t, shape);
      };
      const grads: Record<string, () => tf.Tensor> = {
        x: () => tf.tidy(() => tf.mul(scaled(), r())),
        mean: () => tf.tidy(() => down(tf.neg(tf.mul(scaled(), r())), mean.shape)),
        variance: () => tf.tidy(() => down(tf.mul(tf.mul(scaled(), tf.sub(x, mean)), tf.mul(tf.pow(r(), 3), -0.5)), variance.shape)),
      };
      if (scale) grads.scale = () => tf.tidy(() => down(tf.mul(g, tf.mul(tf.sub(x, mean), r())), scale.shape));
      if (offset) grads.offset = () => tf.tidy(() => down(g, offset.shape));
      return grads;
    },
  });
}
