import * as path from 'node:path';
import { expect } from 'chai';
import { runChild } from './child-process';

const fusedUpdates = path.resolve(__dirname, '../../src/transforms/fused-updates');
const GiB = 2 ** 30;

/**
 * Each runs in a child process: the wasm heap never shrinks, so a heap grown to gigabytes
 * here would stay so for every later test, and a failure corrupts the module for good.
 * The big blocks are taken with the backend's raw malloc and never written, so they cost
 * address space, not memory (a few pages of allocator bookkeeping each).
 */
describe('backend: the wasm heap at its limits', function () {
  this.timeout(240_000);

  /**
   * Every fast kernel on operands placed above 2 GiB: offsets there have the top bit set,
   * and a signed shift (`>> 2`) made them negative, so Slice, Gather, Reverse, Tile and
   * Transpose read and wrote the wrong place (and a CNN's step aborted the module).
   * The kernels' values against the stock kernels' on the same operands, plus a
   * tensor allocated before the filler, which nothing may write.
   */
  for (const threads of [1, 2]) {
    it(`fast kernels give the stock kernels' values for tensors above 2 GiB of heap, and write nothing else (${threads} thread${threads > 1 ? 's' : ''})`, async function () {
      const r = await runChild(`
        const { scaledSum, adamMoments } = require(${JSON.stringify(fusedUpdates)});
        (async () => {
          await backend.selectBackend('wasm', { log: false, threads: ${threads} });
          const be = tf.backend();
          const offset = (t) => be.dataIdMap.get(t.dataId).memoryOffset;
          const sentinel = tf.range(0, 4096);
          let filler;
          try {
            filler = be.wasm._malloc(${2.2 * GiB}) >>> 0;
          } catch (err) {
            filler = 0;
          }
          if (!filler) {
            console.log(JSON.stringify({ skip: 'the wasm heap could not grow to 2.2 GiB here' }));
            return;
          }
          const r = (shape, seed) => tf.randomNormal(shape, 0, 1, 'float32', seed);
          const ri = (shape, seed) => tf.randomUniform(shape, -50, 50, 'int32', seed);
          const probe = tf.zeros([4]);
          const high = offset(probe);
          probe.dispose();
          const c = { b1: 0.9, b2: 0.999, muScale: 1 / (1 - 0.9 ** 3), nuScale: 1 / (1 - 0.999 ** 3), eps: 1e-8 };
          const cases = {
            'Transpose (tiles)': () => tf.transpose(r([130, 257], 1)),
            'Transpose (rows)': () => tf.transpose(r([6, 5, 5, 4], 2), [1, 2, 0, 3]),
            'Transpose (rank 6)': () => tf.transpose(r([2, 3, 4, 5, 6, 7], 3), [0, 1, 3, 5, 2, 4]),
            'Transpose (copy)': () => tf.transpose(r([2, 1, 3], 4), [1, 0, 2]),
            'Transpose int32': () => tf.transpose(ri([33, 17, 2], 5), [2, 0, 1]),
            'Reverse': () => tf.reverse(r([3, 3, 16, 32], 6), [0, 1]),
            'Greater': () => tf.greater(r([4, 5, 3], 7), r([4, 1, 3], 8)).cast('int32'),
            'Maximum int32': () => tf.maximum(ri([2, 3, 4, 5, 6], 9), ri([3, 1, 5, 1], 10)),
            'Tile': () => tf.tile(r([3, 20], 11), [2, 3]),
            'Tile bool': () => tf.tile(tf.greater(r([2, 3, 4], 12), 0), [1, 2, 3]).cast('int32'),
            'Slice': () => tf.slice(r([20, 8], 13), [5, 2], [4, 3]),
            'Slice bool': () => tf.slice(tf.greater(r([4, 5, 6], 14), 0), [1, 0, 0], [2, -1, -1]).cast('int32'),
            'Unpack': () => tf.concat(tf.unstack(r([3, 4, 5], 15), 1).map((t) => t.reshape([-1]))),
            'GatherV2': () => tf.gather(r([10, 40], 16), tf.tensor1d([7, 7, 1], 'int32')),
            'Sum (leading axes)': () => tf.sum(r([256, 2050], 17), 0),
            'Mean (a block of axes)': () => tf.mean(r([30, 15, 15, 32], 18), [0, 1, 2]),
            'MaxPoolGrad': () => tf.grad((t) => tf.sum(tf.mul(tf.maxPool(t, 2, 2, 'valid'), r([3, 4, 4, 16], 19))))(tf.round(tf.mul(r([3, 8, 8, 16], 20), 2))),
            'Conv2DBackpropFilter': () => tf.grad((w) => tf.sum(tf.mul(tf.conv2d(r([5, 14, 14, 16], 21), w, 1, 'same'), r([5, 14, 14, 32], 22))))(r([3, 3, 16, 32], 23)),
            'BatchMatMul (packed)': () => tf.matMul(r([64, 784], 24), r([784, 600], 25)),
            'BatchMatMul (row product)': () => tf.matMul(r([3, 128], 26), r([1568, 128], 27), false, true),
            'BatchMatMul (in place)': () => tf.matMul(r([1, 1568], 28), r([1568, 128], 29)),
            'BatchMatMul (x^T dy)': () => tf.matMul(r([128, 96], 30), r([128, 64], 31), true, false),
            '_FusedMatMul (bias, relu)': () => tf.fused.matMul({ a: r([16, 300], 32), b: r([300, 400], 33), bias: r([400], 34), activation: 'relu' }),
            'Add (bias)': () => tf.add(r([4, 5, 6, 7], 35), r([7], 36)),
            'Add (large)': () => tf.add(r([2 ** 20 + 3], 37), r([2 ** 20 + 3], 38)),
            'Multiply (by a scalar, large)': () => tf.mul(r([2 ** 20 + 5], 39), tf.scalar(3)),
            'Relu': () => tf.relu(r([1003], 40)),
            'TapfitReluGrad': () => tf.grad((t) => tf.sum(tf.mul(tf.relu(t), r([1003], 41))))(r([1003], 42)),
            'ClipByValue': () => tf.clipByValue(r([1003], 43), -0.5, 0.5),
            'Relu6': () => tf.relu6(tf.mul(r([1003], 44), 4)),
            'MaxPool': () => tf.maxPool(r([2, 8, 8, 4], 45), 2, 2, 'same'),
            'AvgPool': () => tf.avgPool(r([2, 8, 8, 4], 46), 2, 2, 'same'),
            'fused conv2d (linear)': () => tf.fused.conv2d({ x: r([2, 8, 8, 3], 47), filter: r([3, 3, 3, 4], 48), strides: 1, pad: 'same', bias: r([4], 49) }),
            'TapfitScaledSum': () => scaledSum(r([1003], 50), 0.9, r([1003], 51), 0.25),
            'TapfitAdamMoments': () => adamMoments(r([1003], 52), r([1003], 53), tf.abs(r([1003], 54)), c).direction,
          };
          const t0 = Date.now();
          const run = (f) => tf.tidy(() => Array.from(f().dataSync(), (v) => (v === 0 ? 0 : v)));
          const wrong = [];
          for (const [name, f] of Object.entries(cases)) {
            let fast, stock;
            try { fast = run(f); } catch (err) { fast = 'error: ' + err.message; }
            backend.uninstallWasmFastKernels();
            try { stock = run(f); } finally { backend.installWasmFastKernels(); }
            // conv2d + add against XNNPACK's fused kernel: the same to float32 rounding (fast-kernels.test.ts).
            const close = name.startsWith('fused conv2d') && Array.isArray(fast) && fast.length === stock.length && fast.every((v, i) => Math.abs(v - stock[i]) <= 1e-5 * Math.max(1, Math.abs(stock[i])));
            if (!close && JSON.stringify(fast) !== JSON.stringify(stock)) wrong.push(name);
          }
          const kept = Array.from(sentinel.dataSync()).every((v, i) => v === i);
          const heap = require(${JSON.stringify(path.resolve(__dirname, '../../src/backend/fast-kernels/wasm-heap'))}).heapFor(be);
          console.log(JSON.stringify({ high, meta: heap.meta, kept, wrong, leaked: tf.memory().numTensors - 1, ms: Date.now() - t0 }));
          be.wasm._free(filler);
        })().catch((err) => console.log(JSON.stringify({ error: String(err && err.stack) })));
      `, {}, 200_000);
      const last = r.stdout.trim().split('\n').pop() ?? '';
      expect(r.code, `exit code; stderr: ${r.stderr.slice(-2000)}`).to.equal(0);
      const out = JSON.parse(last);
      if (out.skip) {
        console.log(`      skipped: ${out.skip}`);
        this.skip();
      }
      expect(out.error).to.equal(undefined);
      expect(out.high, 'tensors made after the filler lie above 2 GiB').to.be.at.least(2 ** 31);
      expect(out.wrong, 'kernels whose values differ from the stock kernels').to.deep.equal([]);
      expect(out.kept, 'a tensor below the filler keeps its values').to.equal(true);
      expect(out.meta, "the kernels' set-up block, allocated at their first call, lies above 2 GiB").to.be.at.least(2 ** 31);
      expect(out.leaked).to.equal(0);
    });
  }

  it('an allocation that no free block of the heap can hold throws TAPFIT_E_MEMORY, whatever the budget, and writes nothing (a fragmented heap)', async function () {
    // Fragments the heap as a fit's optimizer state can (live blocks spread over it): raw
    // blocks of 64 MiB until the heap can grow no more, every other one freed again. Half
    // the heap is then free, but no free block holds 100 MiB, while the guard, which counts
    // tensors, sees next to nothing used. emscripten's malloc returns 0 then, and
    // tfjs-backend-wasm put the tensor at offset 0, over the heap's start.
    const r = await runChild(`
      (async () => {
        await backend.selectBackend('wasm', { log: false, threads: 1 });
        const be = tf.backend();
        const guard = backend.getMemoryGuard('wasm');
        const sentinels = Array.from({ length: 8 }, (_, i) => tf.fill([1024], i + 0.5));
        const blocks = [];
        for (;;) {
          let at = 0;
          try {
            at = be.wasm._malloc(${64 * 2 ** 20}) >>> 0;
          } catch {}
          if (!at || blocks.length === 80) break;
          blocks.push(at);
        }
        if (blocks.length < 8) {
          console.log(JSON.stringify({ skip: 'the wasm heap grew to ' + blocks.length + ' blocks of 64 MiB only' }));
          return;
        }
        for (let i = 0; i < blocks.length; i += 2) be.wasm._free(blocks[i]);
        const accounts = () => ({ guard: guard.usedBytes, bytes: tf.memory().numBytes, tensors: tf.memory().numTensors, dataIds: be.numDataIds() });
        const before = accounts();
        const n = ${(100 * 2 ** 20) / 4};
        const refusals = {};
        for (const [name, f] of Object.entries({ kernel: () => tf.fill([n], 7), upload: () => tf.tensor1d(new Float32Array(n).fill(7)) })) {
          try {
            f().dispose();
            refusals[name] = 'allocated';
          } catch (err) {
            refusals[name] = err.code + ': ' + err.message;
          }
        }
        const after = accounts();
        const kept = sentinels.every((s, i) => be.readSync(s.dataId).every((v) => v === i + 0.5));
        const small = Array.from(tf.add(tf.ones([4]), tf.ones([4])).dataSync());
        for (let i = 1; i < blocks.length; i += 2) be.wasm._free(blocks[i]);
        const whole = tf.fill([n], 7);
        const fits = whole.dataSync()[n - 1] === 7;
        whole.dispose();
        console.log(JSON.stringify({ blocks: blocks.length, heap: be.wasm.HEAPU8.length, before, after, refusals, kept, small, fits }));
      })().catch((err) => console.log(JSON.stringify({ error: String(err && err.stack) })));
    `, {}, 200_000);
    const last = r.stdout.trim().split('\n').pop() ?? '';
    expect(r.code, `exit code; stdout: ${r.stdout.slice(-1000)} stderr: ${r.stderr.slice(-2000)}`).to.equal(0);
    const out = JSON.parse(last);
    if (out.skip) {
      console.log(`      skipped: ${out.skip}`);
      this.skip();
    }
    expect(out.error).to.equal(undefined);
    for (const how of ['kernel', 'upload']) {
      expect(out.refusals[how], how).to.match(/^TAPFIT_E_MEMORY: the wasm heap has no free block of 100\.0 MiB: .* live in a heap of \d\.\d\d GiB/);
    }
    expect(out.after, 'nothing was allocated').to.deep.equal(out.before);
    expect(out.kept, 'live tensors keep their values').to.equal(true);
    expect(out.small, 'the module works on').to.deep.equal([2, 2, 2, 2]);
    expect(out.fits, 'the same tensor fits once the heap has a block for it').to.equal(true);
  });
});
