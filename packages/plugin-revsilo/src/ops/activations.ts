import * as tf from '@tensorflow/tfjs';

export type ActivationName = 'hardswish' | 'relu6' | 'relu' | 'swish' | 'linear';

export const ACTIVATIONS: readonly ActivationName[] = ['hardswish', 'relu6', 'relu', 'swish', 'linear'];

/** PyTorch's Hardsigmoid: relu6(x + 3) / 6. */
export function hardsigmoid(x: tf.Tensor): tf.Tensor {
  return tf.div(tf.relu6(tf.add(x, 3)), 6);
}

/** PyTorch's Hardswish: x * relu6(x + 3) / 6 (docs/techniques.md §2.3). */
export function hardswish(x: tf.Tensor): tf.Tensor {
  return tf.mul(x, hardsigmoid(x));
}

export function activate(name: ActivationName, x: tf.Tensor): tf.Tensor {
  switch (name) {
    case 'hardswish':
      return hardswish(x);
    case 'relu6':
      return tf.relu6(x);
    case 'relu':
      return tf.relu(x);
    case 'swish':
      return tf.mul(x, tf.sigmoid(x));
    case 'linear':
      return x;
  }
}
