import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { TapfitError } from '../../src/errors';
import { installWebgpuShim, uninstallWebgpuShim, WEBGPU_SHIM_KERNELS, webgpuShimInstalled } from '../../src/backend';
import { on, relativeError, webgpuOrSkip } from './helpers';

/** Run f with the stock webgpu kernels (synchronous reads stay), then put the shim back. */
async function withStockWebgpu<T>(f: () => T): Promise<T> {
  uninstallWebgpuShim();
  try {
    return f();
  } finally {
    await installWebgpuShim();
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

/** Values spread over both signs, deterministic. */
function ramp(shape: number[]): tf.Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tf.tensor(Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.7) * 3), shape);
}

describe('backend: webgpu training shim', function () {
  before(async function () {
    await webgpuOrSkip(this, 'webgpu shim');
  });
  after(() => tf.setBackend('cpu'));

  it('reads synchronously in Node (dataSync, arraySync) what the GPU computed', async () => {
    // 64x64 inputs are uploaded and multiplied on the GPU (small ones run on the host).
    const run = () => tf.tidy(() => {
      const a = ramp([64, 64]);
      return { sync: Array.from(tf.matMul(a, a).dataSync()), nested: tf.sum(tf.relu(a), 1).arraySync() as number[] };
    });
    const gpu = run();
    const cpu = await on('cpu', run);
    expect(relativeError(gpu.sync, cpu.sync)).to.be.below(1e-5);
    expect(relativeError(gpu.nested, cpu.nested)).to.be.below(1e-5);
  });

  it('a synchronous read while another WebGPU request is pending fails with a TapfitError saying to await it', async () => {
    const device = (tf.backend() as unknown as { device: { queue: { onSubmittedWorkDone(): Promise<void> } } }).device;
    const x = tf.tidy(() => tf.add(ramp([2048]), 1));
    const pending = device.queue.onSubmittedWorkDone();
    const err = thrown(() => x.dataSync());
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as TapfitError).code).to.equal('TAPFIT_E_BACKEND');
    expect((err as Error).message).to.match(/backend 'webgpu': a synchronous read .* another asynchronous WebGPU operation is pending.*Await the other operation first/);
    await pending;
    // Once the event loop has run Dawn's queued completions, reads work again.
    let value: number | undefined;
    for (let turn = 0; value === undefined && turn < 200; turn++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
      try {
        value = x.dataSync()[1];
      } catch (again) {
        expect((again as Error).message).to.match(/another asynchronous WebGPU operation is pending/);
      }
    }
    expect(value).to.be.closeTo(1 + Math.sin(1.7) * 3, 1e-6);
    x.dispose();
  });

  it('stock webgpu rank-5 pad is rejected by the GPU (garbage, no exception); the shim reports that as an error and computes it right', async () => {
    const pad = () => tf.tidy(() => Array.from(tf.pad(ramp([2, 3, 4, 3, 2]), [[0, 0], [1, 1], [0, 0], [2, 0], [0, 1]]).dataSync()));
    const err = await withStockWebgpu(() => thrown(pad));
    expect(err).to.be.instanceOf(TapfitError);
    expect((err as Error).message).to.match(/backend 'webgpu': the GPU rejected .*program PadProgram.*values computed since are wrong.*selectBackend\('wasm'\)/);
    expect(pad()).to.deep.equal(await on('cpu', pad));
  });

  it('rank 5 and 6 pad, mirrorPad, reverse, where, cumsum and cumprod agree with cpu', async () => {
    const ops: Record<string, (x: tf.Tensor) => tf.Tensor> = {
      pad: (x) => tf.pad(x, x.shape.map((_, i) => [i % 2, 1] as [number, number]), 0.5),
      mirrorPad: (x) => tf.mirrorPad(x, x.shape.map(() => [1, 1] as [number, number]), 'reflect'),
      mirrorPadSymmetric: (x) => tf.mirrorPad(x, x.shape.map((_, i) => [i % 2, 1] as [number, number]), 'symmetric'),
      reverse: (x) => tf.reverse(x, [0, 2, -1]),
      where: (x) => tf.where(tf.greater(x, 0), x, tf.mul(x, -2)),
      cumsum: (x) => tf.cumsum(x, 2, true, true),
      cumprod: (x) => tf.cumprod(tf.div(x, 3), 1),
    };
    for (const shape of [[2, 3, 4, 3, 2], [2, 3, 2, 3, 2, 3]]) {
      const run = () => tf.tidy(() => Object.fromEntries(Object.entries(ops).map(([k, f]) => [k, Array.from(f(ramp(shape)).dataSync())])));
      const gpu = run();
      const cpu = await on('cpu', run);
      for (const k of Object.keys(ops)) expect(relativeError(gpu[k], cpu[k]), `${k} rank ${shape.length}`).to.be.below(1e-5);
    }
  });

  it('stock webgpu cumsum with reverse reuses the shader of the first axis length it compiled; the shim matches cpu', async () => {
    const run = () => tf.tidy(() => [[3, 5], [4, 3], [2, 8]].map(([rows, cols]) => Array.from(tf.cumsum(ramp([rows, cols]), 1, false, true).dataSync())));
    const cpu = await on('cpu', run);
    const stock = await withStockWebgpu(run);
    expect(Math.max(...stock.map((s, i) => relativeError(s, cpu[i])))).to.be.above(0.1);
    run().forEach((g, i) => expect(relativeError(g, cpu[i])).to.be.below(1e-5));
  });

  it('stock webgpu resize-nearest gradient ignores halfPixelCenters; the shim matches cpu exactly', async () => {
    const grad = () => tf.tidy(() => Array.from(tf.grad((x: tf.Tensor) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [3, 4], false, true).mul(ramp([3, 3, 4, 2])).sum())(ramp([3, 5, 7, 2])).dataSync()));
    const cpu = await on('cpu', grad);
    expect(relativeError(await withStockWebgpu(grad), cpu)).to.be.above(0.5);
    expect(relativeError(grad(), cpu)).to.equal(0);
  });

  it("bool and int32 cast to float32 hold float32 values: stock webgpu shared the integer buffer and its rank-3 transpose's shader failed to compile; a Masking layer before a GRU runs as on cpu", async () => {
    const masked = () => tf.tidy(() => {
      const x = tf.tensor3d(Array.from({ length: 60 }, (_, i) => (i % 7 === 0 ? 0 : Math.sin(i))), [3, 5, 4]);
      const mask = tf.cast(tf.any(tf.notEqual(x, 0), -1), 'float32');
      const ints = tf.cast(tf.tensor2d([1, -2, 3, 4, 5, -6], [2, 3], 'int32'), 'float32');
      return [mask, ints].map((t) => Array.from(tf.transpose(tf.expandDims(t, -1), [1, 0, 2]).dataSync()));
    });
    const stock = await withStockWebgpu(() => thrown(masked));
    expect(String((stock as Error).message)).to.match(/rejected|WGSL|f32/);
    expect(masked()).to.deep.equal(await on('cpu', masked));
    const model = tf.sequential({ layers: [tf.layers.masking({ inputShape: [5, 4], maskValue: 0 }), tf.layers.gru({ units: 3, kernelInitializer: 'ones', recurrentInitializer: 'ones' }), tf.layers.dense({ units: 2, kernelInitializer: 'ones' })] });
    const x = tf.tensor3d(Array.from({ length: 60 }, (_, i) => (i % 9 < 4 ? 0 : Math.cos(i) * 0.5)), [3, 5, 4]);
    const y = Array.from((model.predict(x) as tf.Tensor).dataSync());
    const cpu = await on('cpu', () => Array.from((model.predict(x) as tf.Tensor).dataSync()));
    expect(relativeError(Float32Array.from(y), Float32Array.from(cpu))).to.be.below(1e-4);
    x.dispose();
    model.dispose();
  });

  it('addN of more tensors than a shader may bind (9, 20, 50): stock webgpu is rejected by the GPU; the shim sums in groups, as cpu', async () => {
    const terms = (n: number) => Array.from({ length: n }, (_, i) => ramp([3, 4]).mul(i + 1));
    const sum = (n: number) => tf.tidy(() => Array.from(tf.addN(terms(n)).dataSync()));
    const stock = await withStockWebgpu(() => thrown(() => sum(9)));
    expect(String((stock as Error).message)).to.match(/rejected|storage buffers/);
    for (const n of [2, 7, 9, 20, 50]) expect(relativeError(Float32Array.from(sum(n)), Float32Array.from(await on('cpu', () => sum(n)))), `${n} terms`).to.be.below(1e-6);
  });

  it('bridged kernels (string, sparse, ragged, unique, bitwise) agree with cpu', async () => {
    const run = () => tf.tidy(() => [
      tf.string.staticRegexReplace(tf.tensor1d(['a-b', 'c-d']), '-', '+').arraySync(),
      Object.values(tf.string.stringSplit(tf.tensor1d(['a b', 'c']), ' ')).map((t) => t.arraySync()),
      Array.from(tf.string.stringToHashBucketFast(tf.tensor1d(['a', 'b']), 10).dataSync()),
      Object.values(tf.unique(tf.tensor1d([4, 1, 4, 2, 1], 'int32'))).map((t) => Array.from(t.dataSync())),
      Array.from(tf.bitwiseAnd(tf.tensor1d([12, 7], 'int32'), tf.tensor1d([10, 3], 'int32')).dataSync()),
      Object.values(tf.sparse.sparseReshape(tf.tensor2d([[0, 1], [1, 0]], [2, 2], 'int32'), tf.tensor1d([2, 3], 'int32'), tf.tensor1d([3, 2], 'int32'))).map((t) => Array.from(t.dataSync())),
      Object.values(tf.raggedRange(tf.tensor1d([0, 5], 'int32'), tf.tensor1d([3, 7], 'int32'), tf.tensor1d([1, 1], 'int32'))).map((t) => Array.from(t.dataSync())),
    ]);
    const cpu = await on('cpu', run);
    expect(run()).to.deep.equal(cpu);
    expect(cpu[3]).to.deep.equal([[4, 1, 2], [0, 1, 0, 2, 1]]);
    expect(cpu[4]).to.deep.equal([8, 3]);
  });

  it('covers every kernel cpu has and webgpu lacks', async () => {
    const missing = await withStockWebgpu(() => {
      const webgpu = new Set(tf.getKernelsForBackend('webgpu').map((k) => k.kernelName));
      return tf.getKernelsForBackend('cpu').map((k) => k.kernelName).filter((k) => !webgpu.has(k));
    });
    expect(missing).to.include('Unique');
    expect(missing.filter((k) => !WEBGPU_SHIM_KERNELS.includes(k))).to.deep.equal([]);
    for (const k of WEBGPU_SHIM_KERNELS) expect(tf.getKernel(k, 'webgpu'), k).to.not.equal(undefined);
  });

  it('composites free every intermediate (engine leak check on, backend data ids stable)', () => {
    const wasTest = tf.env().getBool('IS_TEST');
    tf.env().set('IS_TEST', true);
    const backend = tf.backend();
    try {
      const step = () => tf.tidy(() => {
        const x = ramp([2, 3, 4, 3, 2]);
        const g = tf.grad((a: tf.Tensor) => tf.cumsum(tf.reverse(tf.pad(tf.slice(a, [0, 1, 0, 0, 0], [2, 2, 4, 3, 2]), [[0, 0], [1, 0], [0, 0], [0, 0], [0, 1]]), [1]), 2).sum())(x);
        return g.sum().dataSync()[0];
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

  it('installs idempotently and uninstalls to the exact stock kernels', async () => {
    await installWebgpuShim();
    expect(webgpuShimInstalled()).to.equal(true);
    const shimmed = tf.getKernel('PadV2', 'webgpu');
    uninstallWebgpuShim();
    uninstallWebgpuShim();
    const stock = tf.getKernel('PadV2', 'webgpu');
    expect(stock).to.not.equal(shimmed);
    expect(tf.getKernel('Unique', 'webgpu')).to.equal(undefined);
    await installWebgpuShim();
    expect(tf.getKernel('PadV2', 'webgpu')).to.not.equal(stock);
  });
});
