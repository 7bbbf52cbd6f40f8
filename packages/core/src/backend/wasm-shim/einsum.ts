import * as tf from '@tensorflow/tfjs';
import { callKernel, composite, kernelConfig, type Scratch } from './kernel-calls';
import type { Overrides } from './overrides';

/*
 * Einsum, correct. tfjs 4.22's kernel (cpu, and wasm through the cpu bridge) drops an
 * operand that has no summed label and leaves the last summed label unsummed when an
 * operand is multiplied in after an earlier sum: 'ij,k->ik' came out [3, 1], 'ij,j->' as
 * [9, 24] where the answer is 33. Here, with at most two operands as tfjs allows:
 *
 *  1. each operand is summed over the labels only it has and the output lacks;
 *  2. one operand: transposed to the output's order;
 *  3. two: the shared labels the output keeps are the batch, the shared ones it drops are
 *     contracted, the rest are each operand's free labels, so the result is one batched
 *     product [batch, freeA, contracted] x [batch, contracted, freeB], reshaped and
 *     transposed to the output's order.
 *
 * The equation is checked by tfjs's own parser (same errors). float32 only; other dtypes
 * keep tfjs's kernel.
 */

export function installEinsum(o: Overrides, backends: readonly string[]): void {
  for (const backendName of backends) {
    const previous = tf.getKernel('Einsum', backendName);
    o.kernel(kernelConfig('Einsum', backendName, (args) => {
      const operands = args.inputs as unknown as tf.TensorInfo[];
      const equation = args.attrs.equation as string;
      if (previous && operands.some((t) => t.dtype !== 'float32')) return callKernel(previous, args);
      const { allDims, idDims } = tf.backend_util.decodeEinsumEquation(equation, operands.length);
      tf.backend_util.checkEinsumDimSizes(allDims.length, idDims, operands as unknown as tf.Tensor[]);
      const [inputs, out] = equation.replace(/\s/g, '').split('->');
      return composite(args.backend, backendName, (k) => {
        const result = einsum(k, inputs.split(','), out, operands);
        // A kernel returns new data, never an input's ('ij->ij').
        return operands.includes(result) ? k.run('Identity', { x: result }) : result;
      });
    }));
  }
}

function einsum(k: Scratch, terms: string[], out: string, operands: tf.TensorInfo[]): tf.TensorInfo {
  const size = new Map<string, number>();
  terms.forEach((term, i) => [...term].forEach((label, axis) => size.set(label, operands[i].shape[axis])));
  const sizes = (labels: string) => [...labels].map((l) => size.get(l)!);
  // 1. Sum out the labels only one operand has and the output lacks.
  const reduced = terms.map((term, i) => {
    const others = terms.filter((_, j) => j !== i).join('');
    const kept = [...term].filter((l) => out.includes(l) || others.includes(l)).join('');
    const axes = [...term].flatMap((l, axis) => (kept.includes(l) ? [] : [axis]));
    return { term: kept, x: axes.length > 0 ? k.run('Sum', { x: operands[i] }, { axis: axes, keepDims: false }) : operands[i] };
  });
  if (reduced.length === 1) return permute(k, reduced[0].x, reduced[0].term, out);
  const [a, b] = reduced;
  const batch = [...out].filter((l) => a.term.includes(l) && b.term.includes(l)).join('');
  const contracted = [...a.term].filter((l) => b.term.includes(l) && !out.includes(l)).join('');
  const freeA = [...a.term].filter((l) => !b.term.includes(l)).join('');
  const freeB = [...b.term].filter((l) => !a.term.includes(l)).join('');
  const count = (labels: string) => tf.util.sizeFromShape(sizes(labels));
  const left = k.reshape(permute(k, a.x, a.term, batch + freeA + contracted), [count(batch), count(freeA), count(contracted)]);
  const right = k.reshape(permute(k, b.x, b.term, batch + contracted + freeB), [count(batch), count(contracted), count(freeB)]);
  const product = k.run('BatchMatMul', { a: left, b: right }, { transposeA: false, transposeB: false });
  return permute(k, k.reshape(product, sizes(batch + freeA + freeB)), batch + freeA + freeB, out);
}

/** x, whose axes carry the labels `from`, with its axes in the order of `to` (the same labels). */
function permute(k: Scratch, x: tf.TensorInfo, from: string, to: string): tf.TensorInfo {
  const perm = [...to].map((l) => from.indexOf(l));
  return perm.every((p, i) => p === i) ? x : k.run('Transpose', { x }, { perm });
}
