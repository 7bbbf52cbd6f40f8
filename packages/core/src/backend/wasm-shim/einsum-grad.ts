import * as tf from '@tensorflow/tfjs';

/*
 * The gradient of Einsum, which tfjs 4.22 does not register. tfjs's einsum takes one or
 * two operands, an explicit '->' and no repeated label within a term, so for operand k
 * with term s_k, the other operand's term s_o and the output's term out:
 *
 *   d operand_k = einsum(out, s_o -> s_k') (dy, other operand)
 *
 * where s_k' keeps the labels of s_k that appear in out or s_o. A label only s_k has was
 * summed out of operand k alone: every element along it got the same dy, so the result is
 * broadcast back along those axes. A scalar output (an empty term) multiplies instead.
 */

export const einsumGradConfig: tf.GradConfig = {
  kernelName: 'Einsum',
  saveAllInputs: true,
  gradFunc: (dy, saved, attrs) => {
    const [inputs, out] = (attrs as unknown as { equation: string }).equation.replace(/\s/g, '').split('->');
    const terms = inputs.split(',');
    const grads: Record<string, () => tf.Tensor> = {};
    terms.forEach((term, k) => {
      const others = saved.filter((_, i) => i !== k);
      const otherTerms = terms.filter((_, i) => i !== k);
      grads[k] = () => tf.tidy(() => operandGrad(dy as tf.Tensor, out, otherTerms, others, term, saved[k].shape));
    });
    return grads;
  },
};

function operandGrad(dy: tf.Tensor, out: string, otherTerms: string[], others: tf.Tensor[], term: string, shape: number[]): tf.Tensor {
  const reached = [...term].filter((label) => out.includes(label) || otherTerms.some((t) => t.includes(label))).join('');
  let grad: tf.Tensor;
  if (out === '') {
    // dy is a scalar: the other operand (or one) reduced to the reached labels, times dy.
    grad = tf.mul(others.length > 0 ? tf.einsum(`${otherTerms.join(',')}->${reached}`, ...others) : tf.onesLike(dy), dy);
  } else {
    grad = tf.einsum(`${[out, ...otherTerms].join(',')}->${reached}`, dy, ...others);
  }
  // Back to the operand's shape: length-1 axes for the labels it alone had, then broadcast.
  const kept = [...term].map((label, axis) => (reached.includes(label) ? shape[axis] : 1));
  return tf.broadcastTo(tf.reshape(grad, kept), shape);
}
