import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { installWasmFastKernels, uninstallWasmFastKernels, wasmFastKernelsInstalled, getMemoryGuard } from '../../src/backend';
import { KERNELS_SOURCE_HASH } from '../../src/backend/fast-kernels/kernels-binary';
import { planPermutation } from '../../src/backend/fast-kernels/transpose';
import { heapFor, type HeapKernels } from '../../src/backend/fast-kernels/wasm-heap';
import { adamMoments, scaledSum } from '../../src/transforms/fused-updates';
import { adam, sgd } from '../../src/transforms/optimizers';
import { stateTensors } from '../../src/transforms/state';
import { transformStep } from '../../src/transforms/step';
import { backendDist, runChild } from './child-process';
import { on, relativeError, useShimmedWasm } from './helpers';

// The hash helper belongs to the build script (CommonJS, outside src).
const { kernelSourceHash } = require(path.resolve(__dirname, '../../../scripts/kernel-source-hash.cjs')) as { kernelSourceHash(root: string): string };

/** f's values with the fast kernels, then with the shim alone (the fast kernels are put back). */
function fastAndPlain(f: () => tf.Tensor): [Float32Array | Int32Array, Float32Array | Int32Array] {
  const run = () => tf.tidy(() => f().dataSync() as Float32Array | Int32Array);
  installWasmFastKernels();
  const fast = run();
  uninstallWasmFastKernels();
  try {
    return [fast, run()];
  } finally {
    installWasmFastKernels();
  }
}

/** Bit-identical values (a zero's sign aside) with and without the fast kernels. */
function expectSame(f: () => tf.Tensor): void {
  const [fast, plain] = fastAndPlain(f);
  const unsigned = (v: number) => (v === 0 ? 0 : v);
  expect(fast.length).to.equal(plain.length);
  expect(Array.from(fast, unsigned)).to.deep.equal(Array.from(plain, unsigned));
}

const randn = (shape: number[], seed: number) => tf.randomNormal(shape, 0, 1, 'float32', seed);

describe('backend: wasm fast kernels', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));

  it('are installed with the shim, and their binary was built from the current kernel sources', () => {
    expect(wasmFastKernelsInstalled()).to.equal(true);
    expect(KERNELS_SOURCE_HASH).to.equal(kernelSourceHash(path.resolve(__dirname, '../../..')), 'kernels/*.ts changed: run npm run build:kernels -w @tapfit/core');
  });

  it('Identity and same-dtype Cast share the data instead of copying it', () => {
    const x = tf.tensor1d([1, 2, 3]);
    const used = getMemoryGuard('wasm')!.usedBytes;
    const clone = tf.clone(x);
    const cast = tf.cast(x, 'float32');
    expect(clone.dataId).to.equal(x.dataId);
    expect(cast.dataId).to.equal(x.dataId);
    expect(getMemoryGuard('wasm')!.usedBytes).to.equal(used);
    x.dispose();
    expect(Array.from(clone.dataSync())).to.deep.equal([1, 2, 3]);
    tf.dispose([clone, cast]);
    expect(getMemoryGuard('wasm')!.usedBytes).to.equal(used - 12);
  });

  it('Transpose: same values as the stock kernel for every kind of permutation, float32 and int32', () => {
    const cases: Array<[number[], number[]]> = [
      [[5, 7], [1, 0]],
      [[130, 257], [1, 0]],
      [[64, 28, 28, 3], [3, 1, 2, 0]],
      [[6, 5, 5, 4], [1, 2, 0, 3]],
      [[2, 3, 4, 5, 6, 7], [0, 1, 3, 5, 2, 4]],
      [[3, 4, 5], [2, 0, 1]],
      [[2, 1, 3], [1, 0, 2]],
      [[1, 9, 1, 5], [3, 2, 1, 0]],
      [[4, 1, 1], [1, 2, 0]],
    ];
    for (const [shape, perm] of cases) expectSame(() => tf.transpose(randn(shape, 3), perm));
    expectSame(() => tf.transpose(tf.randomUniform([33, 17, 2], 0, 1000, 'int32', 4), [2, 0, 1]));
  });

  it('Reverse: the stock kernel\'s values for any axes and rank, float32 and int32, bit for bit (NaN payloads kept), and its gradient; bool right (the stock kernel is not)', () => {
    const cases: Array<[number[], number[]]> = [
      [[7], [0]],
      [[3, 3, 16, 32], [0, 1]],
      [[64, 10, 32], [1]],
      [[5, 6], [1]],
      [[5, 6], [0, 1]],
      [[2, 3, 4, 5], [1, 3]],
      [[2, 3, 4, 5], [-1, -3]],
      [[4, 1, 3], [1]],
      [[1, 1, 5], [0, 1]],
      [[2, 3, 4, 5, 6, 7], [0, 2, 5]],
      [[3, 4], []],
      [[0, 3], [0]],
    ];
    for (const [shape, axes] of cases) expectSame(() => tf.reverse(randn(shape, 5), axes));
    expectSame(() => tf.reverse(tf.scalar(2.5), []));
    expectSame(() => tf.reverse(tf.randomUniform([9, 17, 3], -1000, 1000, 'int32', 6), [0, 2]));
    const bits = new Int32Array([0x7fa00001, 0xffc00abc | 0, 0x3f800000, 0x00000001, 0x80000000 | 0]);
    const nan = tf.tensor1d(new Float32Array(bits.buffer));
    const back = tf.reverse(nan);
    expect(Array.from(new Int32Array((back.dataSync() as Float32Array).buffer))).to.deep.equal(Array.from(bits).reverse());
    tf.dispose([nan, back]);
    // bool: the stock kernel returns wrong values and writes past its output (so no comparison with it here).
    const flags = tf.tensor2d([[true, false, false], [true, true, false]], undefined, 'bool');
    const flipped = tf.reverse(flags, [1]);
    expect(flipped.dtype).to.equal('bool');
    expect(Array.from(flipped.dataSync())).to.deep.equal([0, 0, 1, 0, 1, 1]);
    const both = tf.reverse(tf.tensor3d([[[true, false], [false, false]], [[true, true], [false, true]]], undefined, 'bool'), [0, 2]);
    expect(Array.from(both.dataSync())).to.deep.equal([1, 1, 1, 0, 0, 1, 0, 0]);
    tf.dispose([flags, flipped, both]);
    expectSame(() => tf.grad((x: tf.Tensor) => tf.reverse(x, [0, 2]).mul(randn([4, 3, 5], 8)).sum())(randn([4, 3, 5], 7)));
  });

  it('comparisons, Maximum and Minimum: the stock kernels\' values for every broadcast, NaN, infinities and signed zeros, float32 and int32', () => {
    const specials = [NaN, 1, -0, 0, 2, -Infinity, Infinity, 3.5, -2, 0.25, 2];
    const values = (shape: number[], shift: number) => {
      const n = shape.reduce((p, d) => p * d, 1);
      return tf.tensor(Array.from({ length: n }, (_, i) => specials[(i * 7 + shift) % specials.length]), shape);
    };
    const shapes: Array<[number[], number[]]> = [
      [[4, 5, 3], [4, 5, 3]],
      [[4, 5, 3], [4, 1, 3]],
      [[4, 5, 3], [4, 5, 1]],
      [[4, 5, 3], [1, 5, 3]],
      [[4, 5, 3], [3]],
      [[4, 5, 3], [1]],
      [[1], [4, 5, 3]],
      [[5, 1], [1, 3]],
      [[2, 3, 4, 5, 6], [3, 1, 5, 1]],
      [[], [3]],
      [[0, 3], [3]],
    ];
    const ops = [tf.equal, tf.notEqual, tf.greater, tf.greaterEqual, tf.less, tf.lessEqual, tf.maximum, tf.minimum];
    for (const [sa, sb] of shapes) {
      for (const op of ops) {
        expectSame(() => op(values(sa, 0), values(sb, 3)));
        expectSame(() => op(values(sa, 0).cast('int32'), values(sb, 5).cast('int32')));
      }
    }
    // The zero's sign (expectSame leaves it aside) and the dtype of the result.
    const bits = (t: tf.Tensor) => Array.from(new Int32Array((t.dataSync() as Float32Array).slice().buffer));
    const [fast, plain] = fastAndPlain(() => tf.concat([tf.maximum(tf.tensor1d([-0, 0, NaN, 1]), tf.tensor1d([0, -0, 1, NaN])), tf.minimum(tf.tensor1d([-0, 0]), tf.tensor1d([0, -0]))]));
    expect(Array.from(new Int32Array(fast.buffer))).to.deep.equal(Array.from(new Int32Array(plain.buffer)));
    const mask = tf.greater(tf.tensor2d([[1, 5]]), tf.tensor1d([2]));
    expect([mask.dtype, Array.from(mask.dataSync())]).to.deep.equal(['bool', [0, 1]]);
    expect(bits(tf.maximum(tf.tensor1d([-0]), tf.tensor1d([0])))).to.deep.equal([0x80000000 | 0]);
    mask.dispose();
  });

  it('Tile: the stock kernel\'s values for short and long rows, every rank, float32, int32 and bool', () => {
    const cases: Array<[number[], number[]]> = [
      [[128, 1], [1, 256]],
      [[1, 256], [128, 1]],
      [[1, 1, 1, 16], [4, 5, 5, 1]],
      [[3, 20], [2, 3]],
      [[2, 3, 4], [1, 2, 3]],
      [[5], [4]],
      [[2, 1, 3, 1, 2], [1, 3, 1, 2, 1]],
      [[3, 4], [1, 1]],
      [[0, 3], [2, 2]],
    ];
    for (const [shape, reps] of cases) {
      expectSame(() => tf.tile(randn(shape, 9), reps));
      expectSame(() => tf.tile(tf.randomUniform(shape, -50, 50, 'int32', 10), reps));
      expectSame(() => tf.tile(tf.greater(randn(shape, 11), 0), reps).cast('int32'));
    }
  });

  it('Slice and GatherV2: the stock kernels\' values at every rank and axis, float32, int32 and bool; the same error for an index out of range', () => {
    const slices: Array<[number[], number[], number[]]> = [
      [[7], [2], [3]],
      [[20, 8], [5, 0], [4, 8]],
      [[20, 8], [5, 2], [4, 3]],
      [[4, 5, 6], [1, 0, 0], [2, -1, -1]],
      [[3, 4, 5, 6], [0, 1, 2, 0], [3, 2, 2, 6]],
      [[2, 3, 4, 5, 6], [1, 0, 1, 2, 0], [1, 3, 2, 2, 6]],
      [[1, 2, 3, 2, 32, 32], [0, 0, 0, 0, 0, 0], [1, 1, 3, 1, 32, 32]],
      [[2, 3, 2, 2, 3, 4], [1, 1, 0, 1, 1, 1], [1, 2, 2, 1, 2, 3]],
      [[4, 3], [1, 0], [0, 3]],
    ];
    for (const [shape, begin, size] of slices) {
      expectSame(() => tf.slice(randn(shape, 12), begin, size));
      expectSame(() => tf.slice(tf.randomUniform(shape, -50, 50, 'int32', 13), begin, size));
      expectSame(() => tf.slice(tf.greater(randn(shape, 14), 0), begin, size).cast('int32'));
    }
    // Unpack (tf.unstack): one in-place slice per output, along every axis.
    for (const [shape, axis] of [[[5], 0], [[4, 3], 0], [[4, 3], 1], [[3, 4, 5], -1], [[2, 3, 4, 5], 2], [[2, 0, 3], 0], [[3, 2, 2, 2, 3], 3]] as Array<[number[], number]>) {
      for (const make of [(sh: number[]) => randn(sh, 19), (sh: number[]) => tf.randomUniform(sh, -50, 50, 'int32', 20), (sh: number[]) => tf.greater(randn(sh, 21), 0)]) {
        expectSame(() => tf.tidy(() => tf.concat(tf.unstack(make(shape), axis).map((t) => tf.reshape(t.dtype === 'bool' ? t.cast('int32') : t, [-1])).concat([tf.zeros([1], make([1]).dtype === 'bool' ? 'int32' : make([1]).dtype)]))));
      }
    }
    const gathers: Array<[number[], number[], number[], number]> = [
      [[10, 4], [3, 0, 3, 9], [4], 0],
      [[10, 40], [7, 7, 1], [3], 0],
      [[3, 10, 5], [2, 0, 9, 9], [2, 2], 1],
      [[3, 4, 6], [5, 0], [2], -1],
      [[6], [5, 0, 1], [3], 0],
      [[5, 3], [], [0], 0],
    ];
    for (const [shape, idx, idxShape, axis] of gathers) {
      const indices = () => tf.tensor(idx, idxShape, 'int32');
      expectSame(() => tf.gather(randn(shape, 15), indices(), axis));
      expectSame(() => tf.gather(tf.randomUniform(shape, -50, 50, 'int32', 16), indices(), axis));
      expectSame(() => tf.gather(tf.greater(randn(shape, 17), 0), indices(), axis).cast('int32'));
    }
    const outOfRange = () => tf.tidy(() => tf.gather(randn([4, 2], 18), tf.tensor1d([1, 4], 'int32')).dataSync());
    const message = (f: () => unknown) => {
      try {
        f();
      } catch (err) {
        return (err as Error).message;
      }
      return 'no error';
    };
    const fastError = message(outOfRange);
    uninstallWasmFastKernels();
    const stockError = message(outOfRange);
    installWasmFastKernels();
    expect(fastError).to.equal(stockError).and.to.match(/GatherV2: the index value 4 is not in \[0, 3\]/);
  });

  it('plans permutations by merging axes that stay together', () => {
    expect(planPermutation([2, 1, 3], [1, 0, 2])).to.equal('copy');
    expect(planPermutation([64, 28, 28, 16], [1, 2, 0, 3])).to.deep.include({ copyRows: true, cols: 16 });
    const tile = planPermutation([64, 28, 28, 16], [3, 1, 2, 0]);
    expect(tile).to.deep.include({ rows: 64, cols: 16, copyRows: false });
    expect(tile !== 'copy' && tile !== 'stock' && tile.outer).to.deep.equal([{ size: 784, srcStride: 16, outStride: 64 }]);
  });

  it('Sum over leading axes: the values of cpu (to float32 rounding) and of the stock kernel; other reductions unchanged', async () => {
    for (const f of [() => tf.sum(randn([256, 2050], 5), 0), () => tf.sum(randn([8, 5, 5, 17], 6), [0, 1, 2]), () => tf.sum(randn([8, 5, 5, 17], 6), [1, 0], true)]) {
      const [fast, plain] = fastAndPlain(f);
      const cpu = await on('cpu', () => tf.tidy(() => f().dataSync()));
      // Each column is added up row by row in float32 (cpu adds in float64 and rounds).
      expect(relativeError(fast, cpu)).to.be.below(2e-6);
      expect(relativeError(fast, plain)).to.be.below(2e-6);
      expect(f().shape).to.deep.equal(await on('cpu', () => f().shape));
    }
    expectSame(() => tf.sum(randn([8, 5], 7), 1));
    expectSame(() => tf.sum(randn([8, 5], 7)));
  });

  it('Sum and Mean over a block of axes before the last (batch statistics, global average pooling): cpu\'s values to float32 rounding, Mean the stock kernel\'s bit for bit; other reductions unchanged', async () => {
    const cases = [
      () => tf.mean(randn([30, 15, 15, 32], 20), [0, 1, 2]),
      () => tf.mean(randn([30, 15, 15, 32], 21), [0, 1, 2], true),
      () => tf.mean(randn([6, 7, 9, 16], 22), [1, 2]),
      () => tf.sum(randn([6, 7, 9, 16], 23), [1, 2], true),
      () => tf.mean(randn([4, 3, 5, 6, 2], 24), [2, 3]),
      () => tf.moments(randn([10, 6, 6, 8], 25), [0, 1, 2]).variance,
    ];
    for (const f of cases) {
      const [fast, plain] = fastAndPlain(f);
      const cpu = await on('cpu', () => tf.tidy(() => f().dataSync()));
      expect(relativeError(fast, cpu)).to.be.below(2e-6);
      expect(relativeError(fast, plain)).to.be.below(2e-6);
      expect(f().shape).to.deep.equal(await on('cpu', () => f().shape));
    }
    // Mean and Sum: the stock kernels' values bit for bit (they add each column row by row too).
    for (const [shape, axes] of [[[30, 15, 15, 32], [0, 1, 2]], [[64, 196, 32], [1]], [[6, 7, 9, 16], [1, 2]], [[256, 2050], [0]]] as Array<[number[], number[]]>) {
      expectSame(() => tf.mean(randn(shape, 28), axes));
      expectSame(() => tf.sum(randn(shape, 29), axes));
    }
    expectSame(() => tf.mean(randn([8, 5, 3], 26), 2));
    expectSame(() => tf.mean(randn([8, 5, 3], 26), [0, 2]));
    expectSame(() => tf.mean(randn([8, 5], 27)));
  });

  it('MaxPoolGrad with window == stride: same values as the shim and as cpu, padded windows and ragged channels included', async () => {
    for (const [shape, size, stride, pad] of [[[3, 8, 8, 16], 2, 2, 'valid'], [[2, 7, 7, 3], 2, 2, 'same'], [[2, 9, 9, 5], 3, 3, 'same'], [[2, 9, 9, 4], 3, 2, 'same']] as const) {
      const grad = () => tf.tidy(() => {
        // Rounded values make ties, where the first maximum must win.
        const x = tf.round(tf.mul(randn([...shape], 7), 2));
        const w = randn(tf.maxPool(x as tf.Tensor4D, size, stride, pad).shape, 8);
        return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.maxPool(t as tf.Tensor4D, size, stride, pad), w)))(x);
      });
      expectSame(grad);
      const wasm = tf.tidy(() => grad().dataSync());
      expect(relativeError(wasm, await on('cpu', () => tf.tidy(() => grad().dataSync())))).to.equal(0);
    }
  });

  it("Conv2DBackpropFilter as patches times dy: the shim route's values exactly (XNNPACK's order) and cpu's to float32 rounding, every stride and padding, few and many channels", async () => {
    // Count the patch builds (the heap's kernel table is a plain object).
    const heap = heapFor(tf.backend())!;
    const kernels = heap.kernels;
    let patches = 0;
    heap.kernels = { ...kernels, im2colT: (...a: Parameters<HeapKernels['im2colT']>) => (patches++, kernels.im2colT(...a)) };
    const cases = [
      [[4, 28, 28, 1], [3, 3, 1, 16], 1, 'same'],
      [[3, 9, 11, 3], [5, 3, 3, 5], 2, 'valid'],
      [[2, 8, 8, 2], [3, 3, 2, 20], 2, 'same'],
      [[3, 7, 7, 3], [2, 2, 3, 6], [1, 2], 'same'],
      [[2, 6, 6, 1], [3, 3, 1, 4], 1, 1],
      [[2, 6, 6, 4], [3, 3, 4, 8], 1, 'same'],
      [[5, 14, 14, 16], [3, 3, 16, 32], 1, 'same'],
      [[2, 9, 9, 7], [2, 2, 7, 3], 3, 'valid'],
    ] as const;
    const used = getMemoryGuard('wasm')!.usedBytes;
    for (const [shape, filter, strides, pad] of cases) {
      const grad = () => tf.tidy(() => {
        const w = randn([...filter], 3);
        const x = randn([...shape], 4);
        const g = randn(tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, strides as [number, number], pad).shape, 5);
        return tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(x as tf.Tensor4D, v as tf.Tensor4D, strides as [number, number], pad), g)))(w);
      });
      const calls = patches;
      const [fast, plain] = fastAndPlain(grad);
      const what = JSON.stringify([shape, filter, strides, pad]);
      expect(patches - calls, `${what}: patch builds`).to.equal(1);
      expect(Array.from(fast), what).to.deep.equal(Array.from(plain));
      const cpu = await on('cpu', () => tf.tidy(() => grad().dataSync()));
      expect(relativeError(fast, cpu), what).to.be.below(1e-5);
    }
    heap.kernels = kernels;
    // The patches and the product's output are freed (only the reshaped gradient survives, inside tidy).
    expect(getMemoryGuard('wasm')!.usedBytes).to.equal(used);
  });

  it("a filter gradient over an empty batch is zeros (tapfit's product had no terms to sum and left its new buffer as it found it)", () => {
    const x = tf.zeros([0, 5, 5, 2]) as tf.Tensor4D;
    const g = tf.tidy(() => Array.from(tf.grad((w: tf.Tensor) => tf.sum(tf.conv2d(x, w as tf.Tensor4D, 1, 'same')))(tf.ones([3, 3, 2, 2])).dataSync()));
    expect(g).to.deep.equal(new Array(36).fill(0));
    const dense = tf.tidy(() => Array.from(tf.grad((w: tf.Tensor) => tf.sum(tf.matMul(tf.zeros([0, 70]), w as tf.Tensor2D)))(tf.ones([70, 80])).dataSync()));
    expect(dense.every((v) => v === 0)).to.equal(true);
    x.dispose();
  });

  it("Relu and its gradient in one pass each: tfjs's values bit for bit (infinities, signed zeros, subnormals; NaN of either sign stays NaN), no Step or Multiply, a second derivative as tfjs's, cpu unchanged", async () => {
    const special = [NaN, Infinity, -Infinity, 0, -0, 1, -1, 1e-45, -1e-45, 3.5, new Float32Array(new Int32Array([0xffc00000 | 0]).buffer)[0]];
    const x = () => tf.concat([tf.tensor1d(special), tf.tensor1d(special.map((_, i) => special[(i + 3) % special.length])), randn([1003], 1)]);
    const dy = () => tf.concat([tf.tensor1d(special.map((_, i) => special[(i + 5) % special.length])), tf.tensor1d(special), randn([1003], 2)]);
    const grad = () => tf.tidy(() => { const d = dy(); return tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.relu(t), d)))(x()); });
    const bits = (v: Float32Array | Int32Array) => Array.from(new Int32Array(v.buffer.slice(0)));
    const [fast, plain] = fastAndPlain(grad);
    expect(bits(fast)).to.deep.equal(bits(plain));
    // Relu: tfjs's bits, except that a NaN stays NaN (tfjs's XNNPACK clamp made a NaN with its sign bit set 0).
    const [fastRelu, plainRelu] = fastAndPlain(() => tf.relu(x()));
    const input = tf.tidy(() => x().dataSync());
    input.forEach((v, i) => {
      if (Number.isNaN(v)) expect(fastRelu[i], `relu(NaN) at ${i}`).to.be.NaN;
      else expect(bits(fastRelu.slice(i, i + 1)), `relu(${v}) at ${i}`).to.deep.equal(bits(plainRelu.slice(i, i + 1)));
    });
    expect(Array.from(plainRelu).some((v, i) => Number.isNaN(input[i]) && v === 0), 'tfjs: a NaN became 0').to.equal(true);
    const kernels: string[] = [];
    const profile = await tf.profile(() => void grad().dispose());
    kernels.push(...profile.kernels.map((k) => k.name));
    expect(kernels).to.include('TapfitReluGrad').and.not.include('Step');
    // d/dx of sum(relu'(x) w) through the kernel's own gradient: zero, as tfjs's ops give.
    const second = () => tf.tidy(() => tf.grad((t: tf.Tensor) => tf.sum(tf.grad((u: tf.Tensor) => tf.sum(tf.mul(tf.relu(u), randn([64], 3))))(t)))(randn([64], 4)));
    const [fast2, plain2] = fastAndPlain(second);
    expect(bits(fast2)).to.deep.equal(bits(plain2));
    const cpu = await on('cpu', () => tf.tidy(() => grad().dataSync()));
    const normal = 2 * special.length;
    expect(relativeError(fast.slice(normal), cpu.slice(normal))).to.equal(0);
  });

  it('a bias added along the last axis in one pass: tfjs\'s values, either operand order and rank; other broadcasts stay with tfjs', () => {
    let biasAdds = 0;
    const heap = heapFor(tf.backend())!;
    const kernels = heap.kernels;
    heap.kernels = { ...kernels, addRows: (...a: Parameters<HeapKernels['addRows']>) => (biasAdds++, kernels.addRows(...a)) };
    try {
      const cases: Array<[() => tf.Tensor, number]> = [
        [() => tf.add(randn([4, 5, 6, 7], 1), randn([7], 2)), 1],
        [() => tf.add(randn([7], 2), randn([9, 7], 1)), 1],
        [() => tf.add(randn([3, 10], 1), randn([1, 10], 2)), 1],
        [() => tf.add(randn([3, 10], 1), randn([3, 1], 2)), 0],
        [() => tf.add(randn([10], 1), randn([1, 1, 10], 2)), 0],
      ];
      for (const [f, calls] of cases) {
        const before = biasAdds;
        expectSame(f);
        expect(biasAdds - before).to.equal(calls);
      }
    } finally {
      heap.kernels = kernels;
    }
  });

  it('a transpose that only moves axes of size 1 gives new data: XNNPACK caches a product operand by data id and shape must not change under it', () => {
    // Found as wrong gradients of x W ones[30,1]: ones [30,1] was packed for one product,
    // then its transpose [1,30], sharing the data id, hit the stale packed operand.
    expectSame(() => tf.tidy(() => {
      const ones = tf.ones([30, 1]);
      tf.matMul(randn([32, 30], 1), ones).dataSync();
      return tf.matMul(randn([32, 1], 2), tf.transpose(ones));
    }));
  });

  it("products (x W, x^T dy, dy W^T) give XNNPACK's values exactly: tapfit's product with one thread, ragged and blocked shapes included", () => {
    // Rows not a multiple of 4, columns not a multiple of 8, depths past one 256-deep block.
    // Batches of 1-7 rows take the row product for dy W^T.
    for (const [M, K, N] of [[16, 300, 400], [256, 784, 2048], [3, 5, 7], [5, 600, 13], [130, 257, 9], [1, 1, 1], [1, 128, 1568], [7, 257, 30], [2, 3, 5]]) {
      expectSame(() => tf.matMul(randn([M, K], 1), randn([K, N], 2)));
      expectSame(() => tf.matMul(randn([K, M], 1), randn([K, N], 2), true, false));
      expectSame(() => tf.matMul(randn([M, N], 1), randn([K, N], 2), false, true));
      expectSame(() => tf.matMul(randn([1, M, N], 1), randn([1, K, N], 2), false, true));
    }
  });

  it("x^T dy (a weight gradient) runs through tapfit's product when dy is 64 columns wide or more and the batch 4 rows or more", () => {
    // With helper threads the main thread runs the first part of the product: one call here too.
    const heap = heapFor(tf.backend())!;
    const kernels = heap.kernels;
    let products = 0;
    heap.kernels = { ...kernels, gemm: (...a: Parameters<HeapKernels['gemm']>) => (products++, kernels.gemm(...a)) };
    try {
      const count = (N: number, batch = 128) => {
        const before = products;
        tf.tidy(() => tf.matMul(randn([batch, 96], 1), randn([batch, N], 2), true, false).dataSync());
        return products - before;
      };
      expect(count(64)).to.equal(1);
      expect(count(10)).to.equal(0);
      // A batch of 1-3 rows: an outer product, XNNPACK's route.
      expect(count(64, 3)).to.equal(0);
      expect(count(64, 4)).to.equal(1);
    } finally {
      heap.kernels = kernels;
    }
  });

  it('a batch of 1-7 rows reads W as it lies: dy W^T through the row product, x W through the product without packing; 8 rows and more through the packed product', () => {
    const heap = heapFor(tf.backend())!;
    const kernels = heap.kernels;
    const calls = { gemm: 0, gemmNT: 0 };
    heap.kernels = {
      ...kernels,
      gemm: (...a: Parameters<HeapKernels['gemm']>) => (calls.gemm++, kernels.gemm(...a)),
      gemmNT: (...a: Parameters<HeapKernels['gemmNT']>) => (calls.gemmNT++, kernels.gemmNT(...a)),
    };
    try {
      const count = (kernel: 'gemm' | 'gemmNT', product: () => tf.Tensor) => {
        const before = calls[kernel];
        tf.tidy(() => product().dataSync());
        return calls[kernel] - before;
      };
      const inputGradient = (M: number) => count('gemmNT', () => tf.matMul(randn([M, 128], 1), randn([1568, 128], 2), false, true));
      const forward = (M: number) => count('gemm', () => tf.matMul(randn([M, 1568], 1), randn([1568, 128], 2)));
      const scratch: number[] = [];
      heap.kernels.gemm = (...a: Parameters<HeapKernels['gemm']>) => (calls.gemm++, scratch.push(a[6]), kernels.gemm(...a));
      expect(inputGradient(1)).to.equal(1);
      expect(inputGradient(7)).to.equal(1);
      expect(inputGradient(8)).to.equal(0);
      scratch.length = 0;
      expect(forward(1)).to.equal(1);
      expect(forward(7)).to.equal(1);
      expect(forward(8)).to.equal(1);
      // In place (no scratch) for 1 and 7 rows; packed for 8.
      expect(scratch.map((s) => s !== 0)).to.deep.equal([false, false, true]);
    } finally {
      heap.kernels = kernels;
    }
  });

  it('with 2 threads, products keep rank-3 operands: tf.fused.matMul and matMul equal cpu, a few rows and split over the threads (regression: the fused kernel read 2-D operands as rank 3)', async function () {
    this.timeout(60_000);
    const r = await runChild(`
      (async () => {
        await backend.selectBackend('wasm', { threads: 2, log: false });
        const { heapFor } = require(${JSON.stringify(path.join(backendDist, 'fast-kernels', 'wasm-heap'))});
        const heap = heapFor(tf.backend());
        for (let i = 0; i < 200 && heap.parts() < 2; i++) await new Promise((r) => setTimeout(r, 50));
        let split = 0;
        const run0 = heap.threads.run.bind(heap.threads);
        heap.threads.run = (...args) => (split++, run0(...args));
        // Batch 4: the few-rows routes; batch 64 by 1024: large enough to be split.
        const run = (rows, depth) => tf.tidy(() => {
          const x = tf.randomNormal([rows, depth], 0, 1, 'float32', 1), w = tf.randomNormal([depth, 96], 0, 1, 'float32', 2);
          const fused = tf.fused.matMul({ a: x, b: w });
          const plainT = tf.matMul(x, tf.transpose(w), false, true);
          return [fused.shape, Array.from(fused.dataSync()), Array.from(plainT.dataSync())];
        });
        const onWasm = [run(4, 64), run(64, 1024)];
        const parts = heap.parts();
        await tf.setBackend('cpu');
        const onCpu = [run(4, 64), run(64, 1024)];
        const err = (a, b) => Math.max(...a.map((v, i) => Math.abs(v - b[i]))) / Math.max(...b.map(Math.abs));
        console.log(JSON.stringify({ parts, split, shapes: onWasm.map((w) => w[0]), fused: onWasm.map((w, i) => err(w[1], onCpu[i][1])), transposeB: onWasm.map((w, i) => err(w[2], onCpu[i][2])) }));
      })().catch((e) => { console.log(JSON.stringify({ error: String(e) })); process.exitCode = 1; });
    `);
    expect(r.code, r.stdout + r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.parts).to.equal(2);
    // The 64-row fused product, and dy W^T as (W dy^T)^T: 96 rows of W.
    expect(out.split).to.equal(2);
    expect(out.shapes).to.deep.equal([[4, 96], [64, 96]]);
    for (const e of [...out.fused, ...out.transposeB]) expect(e).to.be.below(1e-5);
  });

  it('scaledSum and adamMoments: one kernel each, the same values as the tf.mul / tf.add chain, on cpu too', async () => {
    const g = () => randn([1003], 1);
    const mu = () => randn([1003], 2);
    const nu = () => tf.abs(randn([1003], 3));
    const c = { b1: 0.9, b2: 0.999, muScale: 1 / (1 - 0.9 ** 3), nuScale: 1 / (1 - 0.999 ** 3), eps: 1e-8 };
    const cases: Array<() => tf.Tensor> = [
      () => scaledSum(mu(), 0.9, g(), 1),
      () => scaledSum(mu(), 0.9, g(), 0.25),
      () => adamMoments(g(), mu(), nu(), c).mu,
      () => adamMoments(g(), mu(), nu(), c).nu,
      () => adamMoments(g(), mu(), nu(), c).direction,
    ];
    for (const f of cases) {
      expectSame(f);
      const wasm = tf.tidy(() => f().dataSync());
      expect(Array.from(wasm)).to.deep.equal(Array.from(await on('cpu', () => tf.tidy(() => f().dataSync()))));
    }
  });

  it('scaledSum and adamMoments store subnormal results as zero (wasm has no flush-to-zero): a velocity no longer sticks at the smallest subnormals; NaN, infinities and normal values pass', async () => {
    const tiny = 2 ** -149;
    const x = [tiny, 4 * tiny, 2 ** -126, 2 ** -125, 1e-3, NaN, Infinity, -(2 ** -130)];
    const fused = tf.tidy(() => Array.from(scaledSum(tf.tensor1d(x), 0.9, tf.zeros([x.length]), 1).dataSync()));
    const chain = Array.from(await on('cpu', () => tf.tidy(() => tf.add(tf.mul(tf.tensor1d(x), 0.9), tf.zeros([x.length])).dataSync())));
    // The chain keeps subnormals: 0.9 * 2^-149 rounds back to 2^-149, and so on for ever.
    expect(chain.slice(0, 2)).to.deep.equal([tiny, 4 * tiny]);
    expect(fused).to.deep.equal([0, 0, 0, chain[3], chain[4], NaN, Infinity, 0]);
    expect(chain[3]).to.be.above(2 ** -126);
    // Momentum with no gradient any more: the velocity reaches zero instead of sticking.
    let v = tf.fill([1003], 1e-30);
    for (let step = 0; step < 700; step++) {
      const next = scaledSum(v, 0.9, tf.zerosLike(v), 1);
      v.dispose();
      v = next;
    }
    expect(Array.from(v.dataSync()).every((e) => e === 0)).to.equal(true);
    v.dispose();
    // Adam's moments and direction alike.
    const c = { b1: 0.9, b2: 0.999, muScale: 1, nuScale: 1, eps: 1e-8 };
    const moments = tf.tidy(() => {
      const r = adamMoments(tf.zeros([8]), tf.fill([8], 2 ** -126), tf.fill([8], 2 ** -126), c);
      return [r.mu, r.nu, r.direction].map((t) => Array.from(t.dataSync()));
    });
    expect(moments).to.deep.equal([new Array(8).fill(0), new Array(8).fill(0), new Array(8).fill(0)]);
  });

  it('momentum and Adam steps through transformStep: identical parameters and state with and without the fast kernels, no leaks', () => {
    for (const transform of [sgd({ lr: 0.1, momentum: 0.9 }), sgd({ lr: 0.1, momentum: 0.9, nesterov: true }), adam({ lr: 0.01 })]) {
      const run = () => {
        const variable = (shape: number[], seed: number, name: string) => tf.tidy(() => tf.variable(randn(shape, seed), true, name));
        const params = { w: variable([37, 5], 11, 'fast_w'), b: variable([5], 12, 'fast_b') };
        let state = transform.init(params);
        for (let step = 0; step < 3; step++) {
          const grads = { w: randn([37, 5], 20 + step), b: randn([5], 30 + step) };
          state = transformStep(transform, params, grads, state, { step });
          tf.dispose(Object.values(grads));
        }
        const values = [params.w.dataSync().slice(), params.b.dataSync().slice(), ...stateTensors(state).map((t) => t.dataSync().slice())];
        tf.dispose([...Object.values(params), ...stateTensors(state)]);
        return values;
      };
      const before = tf.memory().numTensors;
      const fast = run();
      expect(tf.memory().numTensors).to.equal(before);
      uninstallWasmFastKernels();
      const plain = run();
      installWasmFastKernels();
      expect(fast.map((v) => Array.from(v))).to.deep.equal(plain.map((v) => Array.from(v)));
    }
  });

  it("tf.fused.conv2d with a linear activation runs as conv2d + add: the first layer's input gradient is never computed, gradients are cpu's, a forward gives the same values with and without a tape; uninstalling restores the op", async () => {
    const x = randn([2, 9, 9, 1], 1);
    const params = [randn([3, 3, 1, 4], 2), randn([4], 3), randn([3, 3, 4, 2], 4), randn([2], 5)];
    const forward = ([w1, b1, w2, b2]: tf.Tensor[]) => {
      const h = tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w1 as tf.Tensor4D, strides: 1, pad: 'same', bias: b1 });
      return tf.fused.conv2d({ x: tf.relu(h), filter: w2 as tf.Tensor4D, strides: 2, pad: 'valid', bias: b2 });
    };
    const gradients = () => tf.tidy(() => tf.grads((...p: tf.Tensor[]) => tf.sum(tf.square(forward(p))))(params).map((g) => Array.from(g.dataSync())));
    const kernelsOf = async (f: () => unknown) => (await tf.profile(() => void f())).kernels.map((k) => k.name);
    const inputGradients = (names: string[]) => names.filter((n) => n === 'Conv2DBackpropInput').length;
    expect(inputGradients(await kernelsOf(gradients))).to.equal(1); // the second layer's only
    const untaped = tf.tidy(() => Array.from(forward(params).dataSync()));
    let taped: number[] = [];
    tf.tidy(() => tf.grad((w: tf.Tensor) => {
      const y = forward([w, ...params.slice(1)]);
      taped = Array.from(y.dataSync());
      return tf.sum(y);
    })(params[0]));
    expect(taped).to.deep.equal(untaped);
    const onCpu = await on('cpu', gradients);
    gradients().forEach((g, i) => expect(relativeError(g, onCpu[i])).to.be.below(1e-5));
    // Without the fast kernels tfjs's custom gradient computes both layers' input gradients.
    uninstallWasmFastKernels();
    try {
      const stock = tf.fused.conv2d;
      expect(inputGradients(await kernelsOf(gradients))).to.equal(2);
      installWasmFastKernels();
      expect(tf.fused.conv2d).to.not.equal(stock);
      uninstallWasmFastKernels();
      expect(tf.fused.conv2d).to.equal(stock);
    } finally {
      installWasmFastKernels();
    }
    tf.dispose([x, ...params]);
  });

  it('write only their outputs: tensors allocated around them keep their values', () => {
    const sentinels = Array.from({ length: 40 }, (_, i) => tf.fill([1 + (i % 7) * 13], i + 0.5));
    tf.tidy(() => {
      for (const [shape, perm] of [[[5, 7], [1, 0]], [[3, 4, 5], [2, 0, 1]], [[130, 33], [1, 0]]] as Array<[number[], number[]]>) tf.transpose(randn(shape, 1), perm).dataSync();
      tf.sum(randn([9, 19], 2), 0).dataSync();
      tf.grad((t: tf.Tensor) => tf.sum(tf.maxPool(t as tf.Tensor4D, 2, 2, 'same')))(randn([1, 5, 5, 3], 3)).dataSync();
      scaledSum(randn([13], 4), 0.5, randn([13], 5), 2).dataSync();
      adamMoments(randn([13], 4), randn([13], 5), tf.abs(randn([13], 6)), { b1: 0.9, b2: 0.99, muScale: 1, nuScale: 1, eps: 1e-8 }).direction.dataSync();
      tf.matMul(randn([3, 50], 1), randn([50, 70], 2)).dataSync();
    });
    sentinels.forEach((s, i) => expect(Array.from(s.dataSync()).every((v) => v === i + 0.5)).to.equal(true));
    tf.dispose(sentinels);
  });
});
