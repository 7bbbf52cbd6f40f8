import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { TapfitError } from '../../src/errors';
import { installWasmFastKernels, installWasmShim, NOT_BRIDGED, uninstallWasmFastKernels, uninstallWasmShim, WASM_SHIM_KERNELS, wasmShimInstalled } from '../../src/backend';
import { runChild } from './child-process';
import { on, relativeError, useShimmedWasm } from './helpers';

/** Run f with the stock wasm kernels, then put the shim back. */
function withStockWasm<T>(f: () => T): T {
  uninstallWasmShim();
  try {
    return f();
  } finally {
    installWasmShim();
  }
}

function thrown(f: () => unknown): unknown {
  try {
    f();
  } catch (err) {
    return err;
  }
  throw new Error('expected an error');
}

const conv = tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 1).arraySync() as number[][][][];
const filter = tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2).arraySync() as number[][][][];

describe('backend: wasm training shim', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));

  it('stock wasm lacks the conv filter gradient; the error names kernel, backend and fix; the shim provides it', async () => {
    const dW = () => tf.tidy(() => tf.grad((f: tf.Tensor) => tf.conv2d(tf.tensor4d(conv), f as tf.Tensor4D, 1, 'same').sum())(tf.tensor4d(filter)).dataSync());
    const err = withStockWasm(() => thrown(dW));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal('TAPFIT_E_BACKEND');
    expect((err as Error).message).to.match(/kernel 'Conv2DBackpropFilter' is not available on backend 'wasm'/);
    expect((err as Error).message).to.match(/selectBackend\('cpu'\)/);
    expect(relativeError(dW(), await on('cpu', dW))).to.be.below(1e-5);
  });

  it('stock wasm routes max-pool gradients wrongly; the shim matches cpu exactly', async () => {
    const negative = Float32Array.from({ length: 2 * 4 * 4 * 2 }, (_, i) => -1 - ((i * 37) % 11) / 7);
    const grad = () => tf.tidy(() => tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid').sum())(tf.tensor4d(negative, [2, 4, 4, 2])).dataSync());
    const cpu = await on('cpu', grad);
    expect(relativeError(withStockWasm(grad), cpu)).to.be.above(0.5);
    expect(relativeError(grad(), cpu)).to.equal(0);
  });

  it('stock wasm has no UnsortedSegmentSum (the gather gradient); the shim sums in one pass', async () => {
    const grad = () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.gather(t, tf.tensor1d([2, 0, 2], 'int32')).sum())(tf.ones([3, 2])).dataSync());
    expect((withStockWasm(() => thrown(grad)) as Error).message).to.match(/UnsortedSegmentSum/);
    expect(Array.from(grad())).to.deep.equal([1, 1, 0, 0, 2, 2]);
  });

  it('stock wasm OneHot ignores a float dtype; the shim casts', () => {
    const hot = () => tf.tidy(() => tf.oneHot(tf.tensor1d([1, 0], 'int32'), 3, 1, 0, 'float32').dataSync());
    expect(Array.from(withStockWasm(hot))).to.not.deep.equal([0, 1, 0, 1, 0, 0]);
    expect(Array.from(hot())).to.deep.equal([0, 1, 0, 1, 0, 0]);
  });

  it('stock wasm maxPool3d returns FLT_MIN for all-negative windows; the shim does not', () => {
    const pool = () => tf.tidy(() => tf.maxPool3d(tf.tensor5d([-4, -3, -2, -1, -5, -6, -7, -8], [1, 2, 2, 2, 1]), 2, 2, 'valid').dataSync()[0]);
    expect(withStockWasm(pool)).to.not.equal(-1);
    expect(pool()).to.equal(-1);
  });

  it('reverses bool tensors right without the fast kernels (stock wasm reads them as 4-byte elements and writes past its output, so it is not run here)', () => {
    uninstallWasmFastKernels();
    try {
      const flipped = () => tf.tidy(() => Array.from(tf.reverse(tf.tensor2d([[true, false, false], [true, true, false]], undefined, 'bool'), [1]).dataSync()));
      expect(flipped()).to.deep.equal([0, 0, 1, 0, 1, 1]);
      const both = tf.tidy(() => Array.from(tf.reverse(tf.tensor3d([[[true, false], [false, false]], [[true, true], [false, true]]], undefined, 'bool'), [0, 2]).dataSync()));
      expect(both).to.deep.equal([1, 1, 1, 0, 0, 1, 0, 0]);
      // Other dtypes still go to the stock kernel.
      expect(tf.tidy(() => Array.from(tf.reverse(tf.tensor1d([1, 2, 3], 'int32')).dataSync()))).to.deep.equal([3, 2, 1]);
    } finally {
      installWasmFastKernels();
    }
  });

  it('stock wasm labels an int32 strided slice float32 and clips int32 as float bits; the shim runs those dtypes (and bool) on cpu, float32 and plain slices stay on wasm', () => {
    const ints = () => tf.tensor2d([[3, -7, 2], [9, -4, 0], [5, -1, 8], [6, -3, 1]], undefined, 'int32');
    const strided = () => tf.tidy(() => {
      const y = tf.stridedSlice(ints(), [0, 0], [4, 3], [2, 1]);
      return { dtype: y.dtype, v: Array.from(y.dataSync()) };
    });
    expect(withStockWasm(strided).dtype).to.equal('float32');
    expect(strided()).to.deep.equal({ dtype: 'int32', v: [3, -7, 2, 5, -1, 8] });
    const backwards = tf.tidy(() => Array.from(tf.stridedSlice(ints(), [0, 2], [4, 0], [1, -1]).dataSync()));
    expect(backwards).to.deep.equal([2, -7, 0, -4, 8, -1, 1, -3]);
    const plain = tf.tidy(() => tf.stridedSlice(ints(), [1, 0], [3, 3], [1, 1]));
    expect([plain.dtype, Array.from(plain.dataSync())]).to.deep.equal(['int32', [9, -4, 0, 5, -1, 8]]);
    plain.dispose();
    // Which calls cross to cpu: the bridge writes their inputs into the cpu backend.
    const cpu = tf.findBackend('cpu')!;
    const crossings = (f: () => tf.Tensor) => {
      const write = cpu.write.bind(cpu);
      let writes = 0;
      cpu.write = (...a: Parameters<typeof write>) => (writes++, write(...a));
      try {
        tf.tidy(() => f().dataSync());
      } finally {
        cpu.write = write;
      }
      return writes;
    };
    expect(crossings(() => tf.stridedSlice(ints(), [0, 0], [4, 3], [2, 1]))).to.be.above(0);
    expect(crossings(() => tf.stridedSlice(ints(), [1, 0], [3, 3], [1, 1]))).to.equal(0);
    expect(crossings(() => tf.stridedSlice(ints().toFloat(), [0, 0], [4, 3], [2, 1]))).to.equal(0);
    expect(crossings(() => tf.clipByValue(ints().toFloat(), -2, 4))).to.equal(0);
    const clip = () => tf.tidy(() => Array.from(tf.clipByValue(ints(), -2, 4).dataSync()));
    const clipped = [3, -2, 2, 4, -2, 0, 4, -1, 4, 4, -2, 1];
    expect(withStockWasm(clip)).to.not.deep.equal(clipped);
    expect(clip()).to.deep.equal(clipped);
    expect(tf.tidy(() => Array.from(tf.clipByValue(tf.tensor1d([-3.5, 0.25, 9]), -2, 4).dataSync()))).to.deep.equal([-2, 0.25, 4]);
    // bool: the stock kernels read one-byte elements as four-byte ones (not run here).
    const flags = () => tf.tensor2d([[true, false, false], [true, true, false], [false, false, true], [false, true, true]], undefined, 'bool');
    const boolSlice = tf.tidy(() => {
      const y = tf.stridedSlice(flags(), [0, 0], [4, 3], [2, 1]);
      return { dtype: y.dtype, v: Array.from(y.dataSync()) };
    });
    expect(boolSlice).to.deep.equal({ dtype: 'bool', v: [1, 0, 0, 0, 0, 1] });
    const chosen = tf.tidy(() => Array.from(tf.where(flags(), flags(), tf.logicalNot(flags())).dataSync()));
    expect(chosen).to.deep.equal(new Array(12).fill(1));
  });

  it('covers every kernel cpu has and stock wasm lacks, or explains why it cannot', () => {
    const missing = withStockWasm(() => {
      const wasm = new Set(tf.getKernelsForBackend('wasm').map((k) => k.kernelName));
      return tf.getKernelsForBackend('cpu').map((k) => k.kernelName).filter((k) => !wasm.has(k));
    });
    expect(missing).to.include('Conv2DBackpropFilter');
    const uncovered = missing.filter((k) => !WASM_SHIM_KERNELS.includes(k) && !(k in NOT_BRIDGED));
    expect(uncovered).to.deep.equal([]);
    for (const k of WASM_SHIM_KERNELS) expect(tf.getKernel(k, 'wasm'), k).to.not.equal(undefined);
  });

  it('a kernel still missing gives a TapfitError that says why and what to do', () => {
    const err = thrown(() => tf.tidy(() => tf.spectral.fft(tf.complex([1, 2], [0, 0]))));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as Error).message).to.match(/'(Complex|FFT)' is not available on backend 'wasm' \(wasm cannot store complex64 tensors\)/);
    expect((err as Error).message).to.match(/'cpu'/);
    expect((err as Error & { cause?: Error }).cause?.message).to.match(/not registered for backend 'wasm'/);
  });

  it('bridged forward kernels agree with cpu (einsum, strings, ragged)', async () => {
    const run = () => tf.tidy(() => [
      Array.from(tf.einsum('ij,jk->ik', tf.tensor2d([[1, 2], [3, 4]]), tf.tensor2d([[5], [6]])).dataSync()),
      tf.string.staticRegexReplace(tf.tensor1d(['a-b', 'c-d']), '-', '+').arraySync(),
      Array.from(tf.unsortedSegmentSum(tf.tensor1d([1, 2, 3, 4]), tf.tensor1d([1, 0, 1, 1], 'int32'), 2).dataSync()),
      Object.values(tf.raggedRange(tf.tensor1d([0, 5], 'int32'), tf.tensor1d([3, 7], 'int32'), tf.tensor1d([1, 1], 'int32'))).map((t) => Array.from(t.dataSync())),
    ]);
    const cpu = await on('cpu', run);
    expect(run()).to.deep.equal(cpu);
    expect(cpu[0]).to.deep.equal([17, 39]);
    expect(cpu[3]).to.deep.equal([[0, 3, 5], [0, 1, 2, 5, 6]]);
  });

  it('composites free every intermediate (engine leak check on, backend data ids stable)', () => {
    const wasTest = tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', true);
    const backend = tf.backend();
    try {
      const step = () => tf.tidy(() => {
        const x = tf.tensor4d(conv);
        const [dx, dW] = tf.grads((a: tf.Tensor, f: tf.Tensor) => tf.maxPool(tf.relu(tf.conv2d(a as tf.Tensor4D, f as tf.Tensor4D, 2, 'same')), 2, 2, 'same').sum())([x, tf.tensor4d(filter)]);
        const dd = tf.grad((f: tf.Tensor) => tf.depthwiseConv2d(x, f as tf.Tensor4D, 1, 'valid').sum())(tf.tensor4d(filter).slice([0, 0, 0, 0], [3, 3, 3, 1]));
        const mm = tf.grad((b: tf.Tensor) => tf.matMul(tf.ones([4, 5]), b, true, false).sum())(tf.ones([4, 3]));
        return [dx, dW, dd, mm].map((t) => t.sum().dataSync()[0]);
      });
      step();
      const tensors = tf.memory().numTensors;
      const dataIds = backend.numDataIds();
      step();
      expect(tf.memory().numTensors).to.equal(tensors);
      expect(backend.numDataIds()).to.equal(dataIds);
    } finally {
      tf.env().set('IS_TEST', wasTest);
    }
  });

  it('registers kernels for wasm only: every other backend keeps its own', () => {
    const others = () => new Map(['cpu', 'webgpu', 'tensorflow'].flatMap((b) => tf.getKernelsForBackend(b).map((k) => [`${b}/${k.kernelName}`, k.kernelFunc] as const)));
    uninstallWasmShim();
    const before = others();
    installWasmShim();
    const after = others();
    expect(before.size).to.be.above(100);
    expect([...after.keys()]).to.deep.equal([...before.keys()]);
    for (const [k, f] of before) expect(after.get(k) === f, k).to.equal(true);
  });

  it("replacing the program's own kernel or gradient warns once, naming it; one registered after tapfit's stays through a re-selection and an uninstall", async function () {
    this.timeout(120_000);
    // In a fresh process: the program's registrations and the once-only warnings are process-wide.
    const r = await runChild(`
      (async () => {
        require('@tensorflow/tfjs-backend-wasm');
        await tf.setBackend('wasm');
        const calls = [];
        const wrapKernel = (label) => {
          const current = tf.getKernel('Transpose', 'wasm');
          tf.unregisterKernel('Transpose', 'wasm');
          tf.registerKernel({ ...current, kernelFunc: (args) => (calls.push(label), current.kernelFunc(args)) });
        };
        const wrapTileGrad = (label) => {
          const current = tf.getGradient('Tile');
          tf.registerGradient({ ...current, gradFunc: (...args) => (calls.push(label), current.gradFunc(...args)) });
        };
        const use = () => tf.tidy(() => {
          tf.transpose(tf.ones([3, 4])).dataSync();
          tf.grad((v) => tf.tile(v, [2, 2]).sum())(tf.ones([2, 3])).dataSync();
        });
        wrapKernel('Transpose before');
        wrapTileGrad('Tile grad before');
        const lines = [];
        const log = (line) => lines.push(line);
        await backend.selectBackend('wasm', { threads: 1, log });
        use();
        const before = calls.splice(0);
        wrapKernel('Transpose after');
        wrapTileGrad('Tile grad after');
        await backend.selectBackend('wasm', { threads: 1, memoryBudgetBytes: 2 ** 30, log });
        use();
        backend.uninstallWasmShim();
        backend.uninstallGradientFixes();
        use();
        await backend.selectBackend('wasm', { threads: 1, log });
        console.log(JSON.stringify({ warnings: lines.filter((l) => !l.startsWith('backend: ')), before, after: calls }));
      })();
    `);
    expect(r.code, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    const warning = (what: string) =>
      `tapfit replaced your registration of the ${what} with its own: tapfit's kernels and gradients take precedence over those registered before selectBackend() (or installWasmShim()). To use yours, register it after that call; tapfit keeps it then.`;
    // Once each, though the last selection replaced both again.
    expect(out.warnings).to.have.members([warning("gradient of 'Tile'"), warning("kernel 'Transpose' for backend 'wasm'")]);
    expect(out.warnings).to.have.length(2);
    expect(out.before).to.deep.equal([]);
    expect(out.after).to.deep.equal(['Transpose after', 'Tile grad after', 'Transpose after', 'Tile grad after']);
  });

  it('installs idempotently and uninstalls to the exact stock kernels', () => {
    installWasmShim();
    expect(wasmShimInstalled()).to.equal(true);
    const shimmed = tf.getKernel('BatchMatMul', 'wasm');
    uninstallWasmShim();
    uninstallWasmShim();
    const stock = tf.getKernel('BatchMatMul', 'wasm');
    expect(stock).to.not.equal(shimmed);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).to.equal(undefined);
    installWasmShim();
    expect(tf.getKernel('BatchMatMul', 'wasm')).to.not.equal(stock);
    uninstallWasmShim();
    expect(tf.getKernel('BatchMatMul', 'wasm')).to.equal(stock);
    installWasmShim();
  });
});
