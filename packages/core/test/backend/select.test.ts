import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { TapfitError } from '../../src/errors';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  autoThreads,
  BACKEND_ENV,
  describeActiveBackend,
  formatAdapter,
  getMemoryGuard,
  installWasmFastKernels,
  probeWebgpuAdapter,
  selectBackend,
  uninstallGradientFixes,
  uninstallWasmShim,
  WASM_THREADS_ENV,
  wasmFastKernelsInstalled,
  wasmShimInstalled,
} from '../../src/backend';
import { resolveThreads } from '../../src/backend/thread-count';
import { describeTrainer, type TrainerDescription } from '../../src/train/describe';
import { backendDist, fakeGpu, fakeTfjsNode, rejection, runChild } from './child-process';

describe('backend: selectBackend', function () {
  const savedEnv = process.env[BACKEND_ENV];
  const savedThreads = process.env[WASM_THREADS_ENV];
  // The thread count may be set for the whole run (TAPFIT_WASM_THREADS=2 npm test); these tests read 'auto'.
  beforeEach(() => delete process.env[WASM_THREADS_ENV]);
  afterEach(() => {
    if (savedEnv === undefined) delete process.env[BACKEND_ENV];
    else process.env[BACKEND_ENV] = savedEnv;
    if (savedThreads === undefined) delete process.env[WASM_THREADS_ENV];
    else process.env[WASM_THREADS_ENV] = savedThreads;
  });
  after(() => tf.setBackend('cpu'));

  it('rejects an unknown name, listing the valid ones', async () => {
    const err = await rejection(selectBackend('gpu' as 'wasm'));
    expect(err).to.be.instanceOf(TapfitError);
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.equal("selectBackend: unknown backend 'gpu'; valid names: auto, tensorflow, webgpu, wasm, cpu");
  });

  it("'auto' picks wasm here, says why in one line (WebGPU included), installs the shim and a 3 GiB guard", async function () {
    delete process.env[BACKEND_ENV];
    const probe = await probeWebgpuAdapter();
    if (probe.adapter && !probe.adapter.software) {
      console.log(`      skipped: this machine has a hardware WebGPU adapter (${formatAdapter(probe.adapter)}), so 'auto' picks webgpu; covered by select-gpu.test`);
      this.skip();
    }
    // No WebGPU here, or only a software adapter (Mesa's lavapipe), which 'auto' passes over.
    const webgpu = probe.adapter
      ? `webgpu adapter ${formatAdapter(probe.adapter)} skipped, software is slower than wasm (selectBackend('webgpu') uses it anyway)`
      : `webgpu: ${probe.why}`;
    const lines: string[] = [];
    const s = await selectBackend('auto', { log: (l) => lines.push(l) });
    expect(s.reason).to.equal(`backend: wasm (tfjs-node-gpu not installed; ${webgpu}; tfjs-node not installed; ${s.threads} thread${s.threads > 1 ? 's' : ''}, ${s.threadsWhy})`);
    expect(lines).to.deep.equal([s.reason]);
    expect(s.warning).to.equal(undefined);
    expect(tf.getBackend()).to.equal('wasm');
    expect(s).to.include({ name: 'wasm', preference: 'auto', source: 'argument', shim: true, threads: require('@tensorflow/tfjs-backend-wasm').getThreadsCount(), package: '@tensorflow/tfjs-backend-wasm' });
    // Decided now, or by whichever test of this process initialised wasm first.
    expect(s.threadsWhy).to.match(/^(auto: \d+ cores?, load \d+\.\d\d|fixed by the first wasm initialisation in this process)$/);
    expect(s.memoryGuard!.budgetBytes).to.equal(3 * 2 ** 30);
    expect(tf.getKernel('Conv2DBackpropFilter', 'wasm')).to.not.equal(undefined);
  });

  it('is idempotent: the same call returns the same selection without logging again', async () => {
    delete process.env[BACKEND_ENV];
    await selectBackend('cpu', { log: false });
    const lines: string[] = [];
    const a = await selectBackend(undefined, { log: (l) => lines.push(l) });
    const b = await selectBackend(undefined, { log: (l) => lines.push(l) });
    expect(b).to.equal(a);
    expect(lines).to.have.length(1);
    expect(tf.getBackend()).to.equal(a.name);
  });

  it('the same call again puts back what was taken out since: the shim after uninstallWasmShim(), the gradient fixes after uninstallGradientFixes(), the guard after remove()', async () => {
    // Stock wasm's MaxPoolGrad routes an all-negative window's gradient to the wrong element; cpu's is the reference.
    const maxPoolGrad = () => tf.tidy(() => Array.from(tf.grad((x: tf.Tensor) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid').sum())(tf.tensor4d([-3, -1, -2, -4], [1, 2, 2, 1])).dataSync()));
    // Stock tfjs has no gradient for Greater; d/dx of sum(max(x, 0)) is 1 where x > 0, else 0.
    const reluGrad = () => tf.tidy(() => Array.from(tf.grad((x: tf.Tensor) => tf.where(tf.greater(x, 0), x, tf.zerosLike(x)).sum())(tf.tensor1d([-1, 2, -3, 4])).dataSync()));
    await selectBackend('cpu', { log: false });
    const onCpu = maxPoolGrad();
    const fast = wasmFastKernelsInstalled();
    try {
      const first = await selectBackend('wasm', { log: false });
      uninstallWasmShim();
      const again = await selectBackend('wasm', { log: false });
      expect(wasmShimInstalled()).to.equal(true);
      expect(again.shim).to.equal(true);
      expect(again.memoryGuard).to.equal(first.memoryGuard);
      expect(maxPoolGrad()).to.deep.equal(onCpu);
      uninstallGradientFixes();
      await selectBackend('wasm', { log: false });
      expect(reluGrad()).to.deep.equal([0, 1, 0, 1]);
      again.memoryGuard!.remove();
      const guarded = await selectBackend('wasm', { log: false });
      expect(getMemoryGuard('wasm')).to.equal(guarded.memoryGuard);
      const used = guarded.memoryGuard!.usedBytes;
      const t = tf.zeros([256]);
      expect(guarded.memoryGuard!.usedBytes - used).to.equal(256 * 4);
      t.dispose();
    } finally {
      if (fast && wasmShimInstalled() && !wasmFastKernelsInstalled()) installWasmFastKernels(); // uninstallGradientFixes took them out
    }
  });

  it(`${BACKEND_ENV} replaces the default 'auto' but not an explicit choice`, async () => {
    process.env[BACKEND_ENV] = 'cpu';
    const byEnv = await selectBackend(undefined, { log: false });
    expect(byEnv).to.include({ name: 'cpu', source: BACKEND_ENV, reason: `backend: cpu (${BACKEND_ENV}=cpu)` });
    expect(tf.getBackend()).to.equal('cpu');
    expect((await selectBackend('auto', { log: false })).name).to.equal('cpu');
    const explicit = await selectBackend('wasm', { log: false });
    expect(explicit).to.include({ name: 'wasm', source: 'argument' });
    expect(explicit.reason).to.match(/^backend: wasm \(requested; \d threads?, (auto|fixed by)/);
    process.env[BACKEND_ENV] = 'gpu';
    const err = await rejection(selectBackend(undefined, { log: false }));
    expect(err.message).to.equal(`${BACKEND_ENV}='gpu' is not a backend; valid names: auto, tensorflow, webgpu, wasm, cpu (or unset it)`);
  });

  it("'tensorflow' without tfjs-node(-gpu) installed says what to install", async () => {
    const err = await rejection(selectBackend('tensorflow', { log: false }));
    expect(err.code).to.equal('TAPFIT_E_BACKEND');
    expect(err.message).to.contain('install @tensorflow/tfjs-node-gpu on a CUDA machine or @tensorflow/tfjs-node');
  });

  it('validates threads and refuses to change them once wasm is initialised', async () => {
    for (const bad of [0, 1.5, 9]) {
      const err = await rejection(selectBackend('wasm', { threads: bad, log: false }));
      expect(err.code).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.contain('threads must be an integer from 1 to 8');
    }
    await selectBackend('wasm', { log: false });
    const actual = require('@tensorflow/tfjs-backend-wasm').getThreadsCount() as number;
    const err = await rejection(selectBackend('wasm', { threads: actual === 1 ? 2 : 1, log: false }));
    expect(err.message).to.contain(`already initialised with ${actual} thread(s)`);
    // 'auto' keeps whatever the process started with.
    expect((await selectBackend('wasm', { threads: 'auto', log: false })).threads).to.equal(actual);
  });

  it('trainer.describe() names the backend with its thread count and how it was decided', async () => {
    const s = await selectBackend('wasm', { log: false });
    const detail = describeActiveBackend();
    expect(detail).to.equal(`wasm, ${s.threads} thread${s.threads > 1 ? 's' : ''} (${s.threadsWhy})`);
    const text = describeTrainer({ backend: 'wasm', backendDetail: detail, plugins: [], hooks: {} as TrainerDescription['hooks'], stepTransforms: [], optimizer: 'chain', trainableParams: 3 });
    expect(text.split('\n')[0]).to.equal(`tapfit trainer on ${detail}: 3 trainable parameters`);
    await selectBackend('cpu', { log: false });
    expect(describeActiveBackend()).to.equal('cpu');
  });

  it("threads 'auto': the free cores (cores minus the load average), 1 to 4, and 1 in a worker thread", () => {
    expect(autoThreads({ cores: 2, load: 0.2, inWorker: false })).to.deep.equal({ threads: 2, why: 'auto: 2 cores, load 0.20' });
    expect(autoThreads({ cores: 2, load: 1.2, inWorker: false }).threads).to.equal(1);
    expect(autoThreads({ cores: 2, load: 7, inWorker: false }).threads).to.equal(1);
    expect(autoThreads({ cores: 1, load: 0, inWorker: false })).to.deep.equal({ threads: 1, why: 'auto: 1 core, load 0.00' });
    expect(autoThreads({ cores: 16, load: 3, inWorker: false }).threads).to.equal(4);
    expect(autoThreads({ cores: 16, load: 0, inWorker: true })).to.deep.equal({ threads: 1, why: 'auto: 1 in a worker thread' });
  });

  it(`${WASM_THREADS_ENV} sets the count when the code does not; a bad value names the variable`, () => {
    const saved = process.env[WASM_THREADS_ENV];
    const quiet = () => ({ cores: 2, load: 0, inWorker: false });
    try {
      process.env[WASM_THREADS_ENV] = '3';
      expect(resolveThreads(undefined, quiet)).to.deep.equal({ threads: 3, why: WASM_THREADS_ENV });
      expect(resolveThreads(1, quiet)).to.deep.equal({ threads: 1, why: 'requested' });
      process.env[WASM_THREADS_ENV] = 'auto';
      expect(resolveThreads(undefined, quiet).threads).to.equal(2);
      process.env[WASM_THREADS_ENV] = 'many';
      expect(() => resolveThreads(undefined, quiet)).to.throw(TapfitError, `${WASM_THREADS_ENV}='many': threads must be an integer from 1 to 8`);
    } finally {
      if (saved === undefined) delete process.env[WASM_THREADS_ENV];
      else process.env[WASM_THREADS_ENV] = saved;
    }
  });


  it('memoryBudgetBytes: Infinity after a default selection lifts the budget (it is not the default budget again)', async () => {
    try {
      const byDefault = await selectBackend('wasm', { log: false });
      expect(byDefault.memoryGuard!.budgetBytes).to.equal(3 * 2 ** 30);
      const unlimited = await selectBackend('wasm', { log: false, memoryBudgetBytes: Infinity });
      expect(unlimited).to.not.equal(byDefault);
      expect(getMemoryGuard('wasm')!.budgetBytes).to.equal(Infinity);
      expect(unlimited.memoryGuard!.budgetBytes).to.equal(Infinity);
    } finally {
      await selectBackend('wasm', { log: false }); // the default budget, for the tests after this one
    }
    expect(getMemoryGuard('wasm')!.budgetBytes).to.equal(3 * 2 ** 30);
  });

  it('validates memoryBudgetBytes', async () => {
    const err = await rejection(selectBackend('wasm', { memoryBudgetBytes: -5, log: false }));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.contain('memoryBudgetBytes must be a positive number');
  });

  it('validates waitForEarlierMs', async () => {
    for (const bad of [-1, Number.NaN, '10' as unknown as number]) {
      const err = await rejection(selectBackend('cpu', { waitForEarlierMs: bad, log: false }));
      expect(err.code).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.contain('waitForEarlierMs must be a number of milliseconds, 0 or more');
    }
  });

  describe('in a fresh process', function () {
    this.timeout(120_000);

    for (const threads of [1, 2]) {
      it(`an uncaught error after selecting wasm (${threads} thread(s)) ends the process as Node does: exit code 1, the error as thrown (the wasm glue made it 7, blamed on tf-backend-wasm)`, async () => {
        const r = await runChild(`backend.selectBackend('wasm', { threads: ${threads}, log: false }).then(() => { throw new TypeError('user bug'); });`);
        expect(r.code, r.stderr).to.equal(1);
        expect(r.stderr).to.contain('TypeError: user bug');
        expect(r.stderr).to.not.contain('tf-backend-wasm');
      });
    }

    for (const threads of [1, 2]) {
      it(`two selectBackend('wasm', { threads: ${threads} }) at once both resolve, to one initialisation with the shim, and leave os.cpus, Blob, URL.createObjectURL and Worker as they were`, async () => {
        const r = await runChild(`
          const os = require('os');
          const before = { cpus: os.cpus, Blob: globalThis.Blob, createObjectURL: URL.createObjectURL, Worker: Object.getOwnPropertyDescriptor(globalThis, 'Worker') };
          const sameProperty = (a, b) => a === b || (!!a && !!b && a.value === b.value && a.get === b.get && a.set === b.set);
          const dW = () => tf.tidy(() => Array.from(tf.grad((f) => tf.conv2d(tf.randomNormal([2, 6, 6, 3], 0, 1, 'float32', 1), f, 1, 'same').sum())(tf.randomNormal([3, 3, 3, 4], 0, 1, 'float32', 2)).dataSync()));
          Promise.allSettled([1, 2].map(() => backend.selectBackend('wasm', { threads: ${threads}, log: false }))).then(async (settled) => {
            const onWasm = dW();
            await tf.setBackend('cpu');
            const onCpu = dW();
            console.log(JSON.stringify({
              settled: settled.map((s) => (s.status === 'fulfilled' ? s.value.threads : s.reason.message)),
              wasmThreads: require('@tensorflow/tfjs-backend-wasm').getThreadsCount(),
              shim: backend.wasmShimInstalled(),
              restored: { cpus: os.cpus === before.cpus, Blob: globalThis.Blob === before.Blob, createObjectURL: URL.createObjectURL === before.createObjectURL, Worker: sameProperty(Object.getOwnPropertyDescriptor(globalThis, 'Worker'), before.Worker) },
              dWError: Math.max(...onCpu.map((v, i) => Math.abs(v - onWasm[i]))) / Math.max(...onCpu.map(Math.abs)),
            }));
          });
        `);
        expect(r.code, r.stderr).to.equal(0);
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
        expect(out.settled).to.deep.equal([threads, threads]);
        expect(out.wasmThreads).to.equal(threads);
        expect(out.shim).to.equal(true);
        expect(out.restored).to.deep.equal({ cpus: true, Blob: true, createObjectURL: true, Worker: true });
        expect(out.dWError).to.be.below(1e-5);
      });
    }

    // A call whose backend never finished initialising held every later call forever, silently.
    const neverAnswers: [string, string, string][] = [
      ['a backend registered with an init that never resolves', "tf.registerBackend('wasm', () => new Promise(() => {}));", "backend.selectBackend('wasm', { threads: 1, log: false })"],
      ['a navigator.gpu whose adapter request is never answered', "Object.defineProperty(globalThis, 'navigator', { configurable: true, writable: true, value: { gpu: { requestAdapter: () => new Promise(() => {}) } } });", "backend.selectBackend('webgpu', { log: false })"],
    ];
    for (const [what, setup, stuckCall] of neverAnswers) {
      it(`a call stuck on ${what}: later calls fail after waitForEarlierMs naming it, and never run beside it`, async () => {
        const r = await runChild(
          `
          ${setup}
          const stuck = ${stuckCall};
          stuck.then(() => console.log('the stuck call settled'), () => console.log('the stuck call settled'));
          const logged = [];
          const later = [300, 600].map((ms) => backend.selectBackend('cpu', { waitForEarlierMs: ms, log: (line) => logged.push(line) }));
          Promise.allSettled(later).then((settled) => {
            console.log(JSON.stringify({ settled: settled.map((s) => (s.status === 'fulfilled' ? s.value.name : s.reason.code + ' ' + s.reason.message)), logged, active: tf.getBackend() }));
          });
        `,
          {},
          30_000,
        );
        expect(r.code, r.stderr).to.equal(0);
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
        const expected = stuckCall.match(/^backend\.selectBackend\('(\w+)'/)![1];
        out.settled.forEach((m: string, i: number) => {
          expect(m).to.match(new RegExp(`^TAPFIT_E_BACKEND selectBackend\\('cpu'\\) waited ${['0.3', '0.6'][i]} s for an earlier selectBackend\\('${expected}'\\) that has not settled`));
          expect(m).to.contain('restart the process').and.contain('waitForEarlierMs');
        });
        expect(out.logged, 'a refused call selected nothing').to.deep.equal([]);
        expect(out.active).to.not.equal('cpu');
      });
    }

    it('a call that gave up waiting does not run when the earlier call settles later; one that waits on runs after it', async () => {
      // An adapter request answered (no adapter) after 500 ms: slow, not stuck.
      const r = await runChild(`
        Object.defineProperty(globalThis, 'navigator', { configurable: true, writable: true, value: { gpu: { requestAdapter: () => new Promise((r) => setTimeout(() => r(null), 500)) } } });
        const logged = [];
        const log = (line) => logged.push(line);
        const calls = [
          backend.selectBackend('webgpu', { log: false }),
          backend.selectBackend('wasm', { threads: 1, waitForEarlierMs: 100, log }),
          backend.selectBackend('cpu', { log }),
        ];
        Promise.allSettled(calls).then((settled) => {
          console.log(JSON.stringify({ settled: settled.map((s) => (s.status === 'fulfilled' ? s.value.name : s.reason.code + ' ' + s.reason.message)), logged, active: tf.getBackend() }));
        });
      `);
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out.settled[0]).to.match(/^TAPFIT_E_BACKEND backend 'webgpu' has no adapter/);
      expect(out.settled[1]).to.match(/^TAPFIT_E_BACKEND selectBackend\('wasm'\) waited 0.1 s for an earlier selectBackend\('webgpu'\)/);
      expect(out.settled[2]).to.equal('cpu');
      expect(out.logged).to.deep.equal(['backend: cpu (requested)']);
      expect(out.active).to.equal('cpu');
    });

    it("a backend change that overtakes wasm's initialisation is named as the cause (not the install), and selecting again works", async () => {
      // tf.engine().reset() right after the init has started, as another part of a program might.
      const r = await runChild(`
        require('@tensorflow/tfjs-backend-wasm');
        const entry = tf.engine().registryFactory.wasm;
        const factory = entry.factory;
        entry.factory = () => {
          const init = factory();
          entry.factory = factory;
          queueMicrotask(() => tf.engine().reset());
          return init;
        };
        backend.selectBackend('wasm', { threads: 1, log: false }).then(
          () => console.log(JSON.stringify({ error: null })),
          async (e) => {
            const again = await backend.selectBackend('wasm', { threads: 1, log: false });
            console.log(JSON.stringify({ error: e.code + ' ' + e.message, again: again.name, shim: backend.wasmShimInstalled() }));
          },
        );
      `);
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out.error).to.match(/^TAPFIT_E_BACKEND backend 'wasm' did not initialise: another backend change \(tf.setBackend, tf.removeBackend or an engine reset\) ran while it was initialising/);
      expect(out.error).to.not.contain('version');
      expect(out).to.include({ again: 'wasm', shim: true });
    });

    it("'auto' takes an installed tfjs-node and reports the skipped tfjs-node-gpu", async () => {
      // No WebGPU adapter, so that a machine with a GPU (where 'auto' takes webgpu before tfjs-node) gives the same answer.
      const r = await runChild(
        `${fakeGpu(null)}backend.selectBackend('auto').then((s) => { tf.tensor([1, 2]).square().sum().print(); console.log('active', tf.getBackend(), s.memoryGuard); });`,
        { '@tensorflow/tfjs-node': fakeTfjsNode },
      );
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.match(/^backend: tensorflow via @tensorflow\/tfjs-node \(tfjs-node-gpu not installed; webgpu: no WebGPU adapter .*\)$/m);
      expect(r.stdout).to.contain('active tensorflow null');
    });

    it("'auto' without the wasm package falls back to cpu with a warning that names the install command", async () => {
      // No WebGPU adapter either (on a machine with a GPU, 'auto' would take webgpu first).
      const r = await runChild(`${fakeGpu(null)}
        // As if @tensorflow/tfjs-backend-wasm were not installed.
        const Module = require('module');
        const resolve = Module._resolveFilename;
        Module._resolveFilename = function (request, ...rest) {
          if (request === '@tensorflow/tfjs-backend-wasm') throw Object.assign(new Error('Cannot find module ' + request), { code: 'MODULE_NOT_FOUND' });
          return resolve.call(this, request, ...rest);
        };
        const lines = [];
        backend.selectBackend('auto', { log: { info: (l) => lines.push('info ' + l), warn: (l) => lines.push('warn ' + l) } })
          .then((s) => console.log(JSON.stringify({ name: s.name, warning: s.warning, lines })));
      `);
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out.name).to.equal('cpu');
      const warning = 'backend: training on cpu, the plain JavaScript backend (45-400x slower than wasm), because @tensorflow/tfjs-backend-wasm is not installed. Install it next to @tensorflow/tfjs: npm install @tensorflow/tfjs-backend-wasm@4.22.0';
      expect(out.warning).to.equal(warning);
      expect(out.lines).to.have.length(2);
      expect(out.lines[0]).to.match(/^info backend: cpu \(.*tfjs-backend-wasm not installed\)$/);
      expect(out.lines[1]).to.equal(`warn ${warning}`);
    });

    it('an installed backend that fails to load is an error naming it, not a silent fallback', async () => {
      const r = await runChild(
        `backend.selectBackend('auto').then(() => console.log('chose', tf.getBackend()), (e) => { console.log('error', e.code, e.message); process.exitCode = 3; });`,
        { '@tensorflow/tfjs-node-gpu': "throw new Error('libcudart.so.11.0: cannot open shared object file');" },
      );
      expect(r.code).to.equal(3);
      expect(r.stdout).to.not.contain('chose');
      expect(r.stdout).to.contain("error TAPFIT_E_BACKEND backend 'tensorflow' (@tensorflow/tfjs-node-gpu) failed to load: libcudart.so.11.0");
      expect(r.stdout).to.contain('CUDA');
    });

    it('threads: 2 initialises multi-threaded wasm, matches cpu, writes no file, lowers the priority of the pool threads only (Linux), and the process exits by itself', async () => {
      const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-threads-tmp-'));
      const r = await runChild(`
        const wasm = require('@tensorflow/tfjs-backend-wasm');
        (async () => {
          const priorityBefore = require('os').getPriority();
          const s = await backend.selectBackend('wasm', { threads: 2, log: false });
          const f = () => tf.tidy(() => {
            const x = tf.randomNormal([4, 12, 12, 3], 0, 1, 'float32', 1), k = tf.randomNormal([3, 3, 3, 8], 0, 1, 'float32', 2);
            const w = tf.randomNormal([96, 10], 0, 1, 'float32', 3);
            const loss = (k, w) => tf.matMul(tf.maxPool(tf.relu(tf.conv2d(x, k, 1, 'same')), 2, 2, 'valid').reshape([4, -1]).slice([0, 0], [4, 96]), w).square().mean();
            return tf.grads(loss)([k, w]).map((g) => Array.from(g.dataSync()));
          });
          const onWasm = f();
          await tf.setBackend('cpu');
          const onCpu = f();
          let err = 0, scale = 0;
          onCpu.forEach((g, i) => g.forEach((v, j) => { err = Math.max(err, Math.abs(v - onWasm[i][j])); scale = Math.max(scale, Math.abs(v)); }));
          // Nice values of this process's threads (Linux): the pool's are lowered, the main thread's not.
          const fs = require('fs');
          const niceOf = (task) => Number(fs.readFileSync('/proc/self/task/' + task + '/stat', 'utf8').split(') ')[1].split(' ')[16]);
          const nice = process.platform === 'linux' ? { before: priorityBefore, main: niceOf(process.pid), lowered: fs.readdirSync('/proc/self/task').filter((t) => niceOf(t) === 10).length } : null;
          console.log(JSON.stringify({ threads: wasm.getThreadsCount(), selected: s.threads, why: s.threadsWhy, rel: err / scale, nice }));
        })();
      `, {}, 60_000, { TMPDIR: tmp });
      const leftovers = fs.readdirSync(tmp);
      fs.rmSync(tmp, { recursive: true, force: true });
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out).to.include({ threads: 2, selected: 2, why: 'requested' });
      expect(out.rel).to.be.below(1e-5);
      expect(leftovers).to.deep.equal([]);
      if (out.nice === null) console.log('      (skipped the thread priority check: /proc/self/task is Linux only)');
      else {
        expect(out.nice.main, 'the main thread keeps its priority').to.equal(out.nice.before);
        if (out.nice.main < 10) expect(out.nice.lowered).to.be.at.least(1);
      }
    });

    it('multi-threaded wasm works inside a worker thread, where auto means 1 thread; the process exits by itself', async () => {
      // Runs in each worker: select wasm with `threads`, compare a gradient with cpu's.
      const inWorker = async (dist: string, threads: number | 'auto') => {
        const backend = require(dist);
        const tf = require('@tensorflow/tfjs');
        const s = await backend.selectBackend('wasm', { threads, log: false });
        const loss = (w: tf.Tensor) => tf.matMul(tf.relu(tf.matMul(tf.randomNormal([32, 20], 0, 1, 'float32', 1), w)), tf.ones([30, 1])).sum();
        const g = () => tf.tidy(() => Array.from(tf.grad(loss)(tf.randomNormal([20, 30], 0, 1, 'float32', 2)).dataSync() as Float32Array));
        const onWasm = g();
        await tf.setBackend('cpu');
        const onCpu = g();
        const err = Math.max(...onCpu.map((v: number, i: number) => Math.abs(v - onWasm[i])));
        require('node:worker_threads').parentPort.postMessage({ threads: require('@tensorflow/tfjs-backend-wasm').getThreadsCount(), why: s.threadsWhy, rel: err / Math.max(...onCpu.map(Math.abs)) });
      };
      const r = await runChild(`
        const { Worker } = require('node:worker_threads');
        const run = (threads) => new Promise((resolve, reject) => {
          const w = new Worker('(' + ${JSON.stringify(inWorker.toString())} + ')(' + JSON.stringify(${JSON.stringify(backendDist)}) + ', ' + JSON.stringify(threads) + ')', { eval: true });
          w.once('message', resolve);
          w.once('error', reject);
        });
        run(2).then((two) => run('auto').then((auto) => console.log(JSON.stringify({ two, auto }))));
      `);
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out.two).to.include({ threads: 2, why: 'requested' });
      expect(out.auto).to.include({ threads: 1, why: 'auto: 1 in a worker thread' });
      expect(out.two.rel).to.be.below(1e-5);
      expect(out.auto.rel).to.be.below(1e-5);
    });
  });
});
