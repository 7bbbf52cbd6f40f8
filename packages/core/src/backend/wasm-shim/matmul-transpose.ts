import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { composite, kernelConfig } from './kernel-calls';
import { Overrides } from './overrides';

/**
 * The matMul gradient without transpose flags, done at the kernel level.
 *
 * wasm's BatchMatMul is up to about 20x slower when `transposeA` or `transposeB`
 * is set (docs/backends.md §3), and every matMul gradient sets one of them: the
 * registered BatchMatMul gradient and the customGrad inside `tf.fused.matMul`
 * (which tfjs-layers' Dense uses). Re-registering only the gradient would miss
 * the fused path, so the wasm kernels themselves transpose explicitly and run
 * the fast untransposed product. Same numbers, one place, every caller.
 */
export function installMatMulWithoutTransposeFlags(o: Overrides): void {
  for (const kernelName of ['BatchMatMul', '_FusedMatMul']) {
    const stock = tf.getKernel(kernelName, 'wasm');
    if (!stock) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: wasm kernel '${kernelName}' is not registered, so its transpose-free version cannot be installed. Install @tensorflow/tfjs-backend-wasm 4.22 (the same version as @tensorflow/tfjs).`);
    o.kernel(kernelConfig(kernelName, 'wasm', ({ inputs, attrs, backend }) => {
        const { transposeA, transposeB } = attrs as { transposeA: boolean; transposeB: boolean };
        const runStock = (plainInputs: Record<string, tf.TensorInfo>, plainAttrs: Record<string, unknown>) =>
          stock.kernelFunc({ inputs: plainInputs, attrs: plainAttrs as tf.NamedAttrMap, backend }) as tf.TensorInfo;
        if (!transposeA && !transposeB) return runStock(inputs, attrs);
        return composite(backend, 'wasm', (k) => {
          const swapLast = (t: tf.TensorInfo) => k.run('Transpose', { x: t }, { perm: lastTwoSwapped(t.shape.length) });
          const { a, b } = inputs;
          const plain = { ...inputs, a: transposeA ? swapLast(a) : a, b: transposeB ? swapLast(b) : b };
          return runStock(plain, { ...attrs, transposeA: false, transposeB: false });
        });
    }));
  }
}

function lastTwoSwapped(rank: number): number[] {
  const perm = Array.from({ length: rank }, (_, i) => i);
  [perm[rank - 2], perm[rank - 1]] = [perm[rank - 1], perm[rank - 2]];
  return perm;
}
