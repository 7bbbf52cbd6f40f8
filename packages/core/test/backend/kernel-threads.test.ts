import * as path from 'node:path';
import { expect } from 'chai';
import { partRange } from '../../src/backend/fast-kernels/kernel-threads';
import { backendDist, runChild } from './child-process';

const fastKernels = path.join(backendDist, 'fast-kernels');
const transforms = path.resolve(backendDist, '../transforms');

/** Child preamble: the heap of the current backend, a wait for the helper, exact values. */
const prelude = `
const { heapFor } = require(${JSON.stringify(path.join(fastKernels, 'wasm-heap'))});
const fused = require(${JSON.stringify(path.join(transforms, 'fused-updates'))});
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
async function helperReady(heap) {
  for (let i = 0; i < 200 && heap.parts() < 2; i++) await sleep(50);
  return heap.parts();
}
/** Values as bits, to compare exactly. */
const bits = (t) => Array.from(new Int32Array(t.dataSync().buffer.slice(0)));
const rnd = (shape, seed) => tf.randomNormal(shape, 0, 1, 'float32', seed);
`;

function lastJson(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout.trim().split('\n').pop()!);
}

describe('backend: tapfit products split over the wasm threads', function () {
  this.timeout(180_000);

  it('splits work in parts on multiples of the alignment, the last part taking the rest', () => {
    expect([0, 1, 2].map((p) => partRange(10, p, 3))).to.deep.equal([[0, 0], [0, 4], [4, 10]]);
    expect([0, 1].map((p) => partRange(2100003, p, 2))).to.deep.equal([[0, 1050000], [1050000, 2100003]]);
    expect([0, 1].map((p) => partRange(9, p, 2, 1))).to.deep.equal([[0, 4], [4, 9]]);
    expect(partRange(701, 1, 2, 16)).to.deep.equal([336, 701]);
  });

  it('on 2-thread wasm: split products and element-wise kernels give the one-part values bit for bit and tfjs\'s, nothing leaks, the helper stops with the backend', async () => {
    const r = await runChild(`${prelude}
      (async () => {
        await backend.selectBackend('wasm', { threads: 2, log: false });
        const cases = {
          forward: () => tf.matMul(rnd([256, 300], 1), rnd([300, 520], 2)),
          ragged: () => tf.matMul(rnd([130, 4001], 3), rnd([4001, 9], 4)),
          weightGradient: () => tf.matMul(rnd([96, 400], 5), rnd([96, 136], 6), true, false),
          inputGradient: () => tf.matMul(rnd([64, 520], 7), rnd([300, 520], 8), false, true),
          // Large enough to be split (2^20 elements and more), ragged lengths.
          add: () => tf.add(rnd([1100, 1001], 9), rnd([1100, 1001], 10)),
          scale: () => tf.mul(rnd([1100, 1001], 11), tf.scalar(-0.37)),
          scaleFirst: () => tf.mul(tf.scalar(1.5), rnd([1100, 1001], 12)),
          scaledSum: () => fused.scaledSum(rnd([1100003], 13), 0.9, rnd([1100003], 14), 0.1),
          adam: () => {
            const m = fused.adamMoments(rnd([1100001], 15), rnd([1100001], 16), tf.abs(rnd([1100001], 17)), { b1: 0.9, b2: 0.999, muScale: 1.5, nuScale: 2.5, eps: 1e-7 });
            return tf.concat([m.mu, m.nu, m.direction]);
          },
          bias: () => tf.add(rnd([1100, 1001], 20), rnd([1001], 21)),
          reluGrad: () => tf.grad((t) => tf.sum(tf.mul(tf.relu(t), rnd([1100, 1001], 25))))(tf.round(rnd([1100, 1001], 24))),
          // Patches of 2^20 elements and more (144 taps x 9408 columns), then their product.
          filterGrad: () => tf.grad((w) => tf.sum(tf.mul(tf.conv2d(rnd([12, 28, 28, 16], 28), w, 1, 'same'), rnd([12, 28, 28, 8], 29))))(rnd([3, 3, 16, 8], 30)),
          // Rounded inputs make ties (the first maximum wins in every part). Plus 0: the
          // shim's route writes -0 where a negative dy meets a cell that is not the
          // maximum, tapfit's kernel (and cpu) +0.
          maxPoolGrad: () => tf.add(tf.grad((t) => tf.sum(tf.mul(tf.maxPool(t, 2, 2, 'valid'), rnd([64, 7, 7, 32], 31))))(tf.round(rnd([64, 14, 14, 32], 32))), 0),
          // Not split: int32, other broadcasting, small.
          addInt32: () => tf.add(tf.randomUniform([1100, 1001], 0, 1000, 'int32', 18), tf.randomUniform([1100, 1001], 0, 1000, 'int32', 19)),
          addColumn: () => tf.add(rnd([1100, 1001], 26), rnd([1100, 1], 27)),
          addSmall: () => tf.add(rnd([1000], 22), rnd([1000], 23)),
        };
        const values = (f) => tf.tidy(() => bits(f()));
        backend.uninstallWasmFastKernels();
        const xnnpack = Object.fromEntries(Object.entries(cases).map(([name, f]) => [name, values(f)]));
        backend.installWasmFastKernels();
        values(cases.forward);
        const heap = heapFor(tf.backend());
        const ready = await helperReady(heap);
        const split = {};
        const run = heap.threads.run.bind(heap.threads);
        heap.threads.run = (main, name, lists) => { split[name] = (split[name] || 0) + lists.length; return run(main, name, lists); };
        const before = tf.memory().numTensors;
        const differ = {};
        for (const [name, f] of Object.entries(cases)) {
          const onTwo = values(f);
          const parts = heap.parts;
          heap.parts = () => 1;
          const onOne = values(f);
          heap.parts = parts;
          const diff = (a, b) => a.filter((v, i) => v !== b[i]).length + Math.abs(a.length - b.length);
          differ[name] = [diff(onTwo, onOne), diff(onTwo, xnnpack[name])];
        }
        const leaked = tf.memory().numTensors - before;
        const threads = heap.threads;
        tf.removeBackend('wasm');
        for (let i = 0; i < 100 && threads.running > 0; i++) await sleep(50);
        console.log(JSON.stringify({ ready, split, differ, leaked, running: threads.running }));
      })();
    `);
    expect(r.code, r.stderr).to.equal(0);
    const out = lastJson(r.stdout);
    expect(out.ready).to.equal(2);
    // Four products in two parts each (the ragged one: 130 rows; dy W^T as (W dy^T)^T),
    // eight element-wise kernels in two parts each (scale three times: the gradient of the
    // sum in reluGrad broadcasts dy by a multiply; relu: its forward), the filter
    // gradient's patches and product and the max-pool gradient in two parts each; the adds
    // that do not qualify not at all.
    expect(out.split).to.deep.equal({ gemm: 10, add: 2, scale: 6, axpby: 2, adam: 2, addRows: 2, reluGrad: 2, relu: 2, im2colT: 2, maxPoolGradTiled: 2 });
    const none = [0, 0];
    expect(out.differ).to.deep.equal({ forward: none, ragged: none, weightGradient: none, inputGradient: none, add: none, scale: none, scaleFirst: none, scaledSum: none, adam: none, bias: none, reluGrad: none, filterGrad: none, maxPoolGrad: none, addInt32: none, addColumn: none, addSmall: none });
    expect(out.leaked).to.equal(0);
    expect(out.running).to.equal(0);
  });

  /** A child whose kernel helper is replaced by `helper` (a Worker class, or one that throws) before it starts. */
  const withHelper = (helper: string) => runChild(`${prelude}
    const workerThreads = require('node:worker_threads');
    (async () => {
      await backend.selectBackend('wasm', { threads: 2, log: false });
      const a = rnd([256, 300], 1), b = rnd([300, 520], 2);
      backend.uninstallWasmFastKernels();
      const expected = tf.tidy(() => bits(tf.matMul(a, b)));
      backend.installWasmFastKernels();
      const same = () => tf.tidy(() => bits(tf.matMul(a, b)).every((v, i) => v === expected[i]));
      // The helpers start with the first fast kernel call.
      const RealWorker = workerThreads.Worker;
      workerThreads.Worker = (${helper})(RealWorker);
      const first = same();
      workerThreads.Worker = RealWorker;
      const heap = heapFor(tf.backend());
      await sleep(1000);
      console.log(JSON.stringify({ first, later: same(), threads: heap.threads === null ? null : { parts: heap.parts(), running: heap.threads.running } }));
    })();
  `);

  it('fall back to the main thread when the helper cannot be created', async () => {
    const r = await withHelper(`() => class { constructor() { throw new Error('no threads here'); } }`);
    expect(r.code, r.stderr).to.equal(0);
    expect(lastJson(r.stdout)).to.deep.equal({ first: true, later: true, threads: null });
  });

  it('fall back to the main thread when the helper fails as it starts', async () => {
    const r = await withHelper(`(Real) => class extends Real { constructor(_source, options) { super('throw new Error("helper fails")', options); } }`);
    expect(r.code, r.stderr).to.equal(0);
    expect(lastJson(r.stdout)).to.deep.equal({ first: true, later: true, threads: { parts: 1, running: 0 } });
  });

  it('a helper that dies during a call: a TapfitError naming the fix, no output left, then the main thread alone with the same values', async () => {
    const r = await runChild(`${prelude}
      (async () => {
        await backend.selectBackend('wasm', { threads: 2, log: false });
        const a = rnd([256, 300], 1), b = rnd([300, 520], 2);
        tf.tidy(() => tf.matMul(a, b));
        const heap = heapFor(tf.backend());
        const ready = await helperReady(heap);
        const before = tf.tidy(() => bits(tf.matMul(a, b)));
        // Kill the helper, then hand it work as if it were still alive.
        const helper = heap.threads.helpers[0];
        await helper.worker.terminate();
        helper.alive = true;
        heap.threads.timeoutMs = 300;
        const tensors = tf.memory().numTensors;
        const bytes = backend.getMemoryGuard('wasm').usedBytes;
        let error = null;
        try { tf.matMul(a, b); } catch (err) { error = { code: err.code, message: err.message }; }
        const left = { tensors: tf.memory().numTensors - tensors, bytes: backend.getMemoryGuard('wasm').usedBytes - bytes };
        const after = tf.tidy(() => bits(tf.matMul(a, b)));
        console.log(JSON.stringify({ ready, error, left, parts: heap.parts(), same: after.every((v, i) => v === before[i]) }));
      })();
    `);
    expect(r.code, r.stderr).to.equal(0);
    const out = lastJson(r.stdout) as { error: { code: string; message: string } } & Record<string, unknown>;
    expect(out.ready).to.equal(2);
    expect(out.error.code).to.equal('TAPFIT_E_BACKEND');
    expect(out.error.message).to.contain("part of 'gemm' within 0.3 s").and.contain('threads: 1');
    expect(out).to.deep.include({ left: { tensors: 0, bytes: 0 }, parts: 1, same: true });
  });
});
