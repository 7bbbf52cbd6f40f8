import * as tf from '@tensorflow/tfjs';
import { Overrides } from './overrides';

/**
 * The gradient of cumsum along any axis but the last. tfjs 4.22's gradient is
 * cumsum(dy) in reverse (right) followed by a transpose that moves `axis` last,
 * which is wrong on every backend: the gradient comes out transposed (silently
 * wrong values for square shapes, a shape error otherwise). The cumsum kernel
 * already works along `axis`, so no transpose is needed.
 */
export function installCumsumGrad(o: Overrides): void {
  o.gradient({
    kernelName: 'Cumsum',
    gradFunc: (dy, _saved, attrs) => {
      const { axis, exclusive, reverse } = attrs as { axis: number; exclusive: boolean; reverse: boolean };
      return { x: () => tf.cumsum(dy as tf.Tensor, axis, exclusive, !reverse) };
    },
  });
}
