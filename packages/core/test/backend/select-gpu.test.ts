import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { classifyAdapter, formatAdapter, probeWebgpuAdapter, WEBGPU_PACKAGES } from '../../src/backend';
import { fakeGpu, fakeTfjsNode, runChild } from './child-process';

/*
 * Selecting a GPU: WebGPU (explicit, and in 'auto' on hardware adapters only)
 * and tfjs-node-gpu. Each case runs in a fresh process, with stand-ins for what
 * this machine lacks: a `navigator.gpu` whose adapter is null, software or
 * hardware (defined before selectBackend, which uses an existing navigator.gpu
 * as it is), and a tfjs-node-gpu that registers its backend the way the real
 * package does.
 */

const SWIFTSHADER = { vendor: 'google', architecture: 'swiftshader', device: 'swiftshader device (subzero)', description: 'SwiftShader Device (Subzero)' };
const RTX = { vendor: 'nvidia', architecture: 'ampere', device: '', description: 'NVIDIA GeForce RTX 3090' };

/** Prints the selection's reason and backend, or the error's code and message (exit code 3). */
const select = (preference: string) => `
  backend.selectBackend(${JSON.stringify(preference)}, { log: false }).then(
    (s) => console.log('chose', s.name, '|', s.reason),
    (e) => { console.log('error', e.code, e.message); process.exitCode = 3; },
  );`;

/** The stand-in's kernels, as registered before selection, must be exactly what 'tensorflow' runs afterwards. */
const fakeTfjsNodeGpu = `
// Like @tensorflow/tfjs-node-gpu 4.22's index.js: load the native binding (which throws when CUDA is missing),
// register the kernels for 'tensorflow', then the backend at priority 3.
if (process.env.FAKE_CUDA_MISSING) throw new Error('libcudart.so.11.0: cannot open shared object file: No such file or directory');
${fakeTfjsNode}
globalThis.standInKernels = new Map(tf.getKernelsForBackend('tensorflow').map((k) => [k.kernelName, k.kernelFunc]));
`;

async function webgpuPackagesOrSkip(ctx: Mocha.Context): Promise<void> {
  const probe = await probeWebgpuAdapter();
  if (!probe.adapter && /not installed/.test(probe.why)) {
    console.log(`      skipped: ${probe.why}; these cases need ${WEBGPU_PACKAGES.join(' and ')} (root devDependencies)`);
    ctx.skip();
  }
}

describe('backend: selecting a GPU', function () {
  this.timeout(120_000);
  after(() => tf.setBackend('cpu'));

  it('tells software adapters (lavapipe, SwiftShader, fallback adapters) from hardware ones', () => {
    expect(classifyAdapter({ info: { vendor: 'mesa', architecture: 'software', description: 'llvmpipe: Mesa 25.0.7 (LLVM 15.0.6)' } }).software).to.equal(true);
    expect(classifyAdapter({ info: SWIFTSHADER }).software).to.equal(true);
    expect(classifyAdapter({ info: { vendor: 'x', description: 'Some GPU', isFallbackAdapter: true } }).software).to.equal(true);
    const rtx = classifyAdapter({ info: RTX });
    expect(rtx.software).to.equal(false);
    expect(formatAdapter(rtx)).to.equal('NVIDIA GeForce RTX 3090 (vendor nvidia, architecture ampere; hardware)');
    // What Dawn reported for an NVIDIA H200 (driver 580): the card is only in `device`.
    const h200 = classifyAdapter({ info: { vendor: 'nvidia', architecture: '', device: 'nvidia-h200', description: 'NVIDIA: 580.159.04 580.159.4.0' } });
    expect(h200.software).to.equal(false);
    expect(formatAdapter(h200)).to.equal('nvidia-h200, NVIDIA: 580.159.04 580.159.4.0 (vendor nvidia; hardware)');
  });

  describe('WebGPU, in a fresh process', function () {
    before(async function () {
      await webgpuPackagesOrSkip(this);
    });

    it("no adapter: 'webgpu' is an error naming the backend and the fix; 'auto' passes over it and says why", async () => {
      const explicit = await runChild(`${fakeGpu(null)}${select('webgpu')}`);
      expect(explicit.code).to.equal(3);
      expect(explicit.stdout).to.contain("error TAPFIT_E_BACKEND backend 'webgpu' has no adapter: no WebGPU adapter (Dawn found no usable GPU driver, e.g. Vulkan on Linux)");
      expect(explicit.stdout).to.match(/Install the GPU's Vulkan driver.*lavapipe >= 25.*bookworm-backports.*TAPFIT_BACKEND=wasm/);
      const auto = await runChild(`${fakeGpu(null)}${select('auto')}`);
      expect(auto.code, auto.stderr).to.equal(0);
      expect(auto.stdout).to.contain('chose wasm | backend: wasm (tfjs-node-gpu not installed; webgpu: no WebGPU adapter (Dawn found no usable GPU driver, e.g. Vulkan on Linux); tfjs-node not installed; ');
    });

    it("a software adapter: 'auto' passes over it, naming it and why", async () => {
      const r = await runChild(`${fakeGpu(SWIFTSHADER)}${select('auto')}`);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.contain(
        "chose wasm | backend: wasm (tfjs-node-gpu not installed; webgpu adapter SwiftShader Device (Subzero) (vendor google, architecture swiftshader; software) skipped, software is slower than wasm (selectBackend('webgpu') uses it anyway); tfjs-node not installed; ",
      );
    });

    it("a hardware adapter: 'auto' takes webgpu, and a device that fails is an error naming it, not a fallback", async () => {
      const r = await runChild(`${fakeGpu(RTX)}${select('auto')}`);
      expect(r.code).to.equal(3);
      expect(r.stdout).to.not.contain('chose');
      expect(r.stdout).to.contain("error TAPFIT_E_BACKEND backend 'webgpu' failed to initialise on NVIDIA GeForce RTX 3090 (vendor nvidia, architecture ampere; hardware)");
      expect(r.stdout).to.contain('choose another backend (TAPFIT_BACKEND=wasm)');
      // tfjs logs why the device failed.
      expect(r.stdout + r.stderr).to.contain('this adapter is a stand-in: no device');
    });

    it("a real adapter presented as hardware: 'auto' takes webgpu, reports the adapter, and its gradients match cpu", async function () {
      const probe = await probeWebgpuAdapter();
      if (!probe.adapter) {
        console.log(`      skipped: needs a WebGPU adapter (${probe.why})`);
        this.skip();
      }
      const r = await runChild(`
        const { create, globals } = require('webgpu');
        Object.assign(globalThis, globals);
        const dawn = create([]);
        const disguise = (adapter) => new Proxy(adapter, { get: (a, k) => k === 'info' ? ${JSON.stringify(RTX)} : typeof a[k] === 'function' ? a[k].bind(a) : a[k] });
        Object.defineProperty(globalThis, 'navigator', { configurable: true, writable: true, value: { gpu: { requestAdapter: async (o) => disguise(await dawn.requestAdapter(o)) } } });
        (async () => {
          const s = await backend.selectBackend('auto', { log: false });
          const f = () => tf.tidy(() => {
            const x = tf.randomNormal([4, 6, 6, 2], 0, 1, 'float32', 1), k = tf.randomNormal([3, 3, 2, 4], 0, 1, 'float32', 2);
            return Array.from(tf.grad((k) => tf.conv2d(x, k, 1, 'same').relu().sum())(k).dataSync());
          });
          const gpu = f();
          await tf.setBackend('cpu');
          const cpu = f();
          const rel = Math.max(...cpu.map((v, i) => Math.abs(v - gpu[i]))) / Math.max(...cpu.map(Math.abs));
          console.log(JSON.stringify({ name: s.name, reason: s.reason, adapter: s.adapter, shim: s.shim, guard: s.memoryGuard, rel }));
        })();
      `);
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out).to.deep.include({ name: 'webgpu', shim: true, guard: null });
      expect(out.reason).to.equal('backend: webgpu (tfjs-node-gpu not installed; adapter NVIDIA GeForce RTX 3090 (vendor nvidia, architecture ampere; hardware))');
      expect(out.adapter).to.deep.equal({ ...RTX, software: false });
      expect(out.rel).to.be.below(1e-5);
    });

    it('webgpu packages not installed: auto says so, an explicit request says what to install', async () => {
      const hide = `
        const Module = require('module');
        const resolve = Module._resolveFilename;
        Module._resolveFilename = function (request, ...rest) {
          if (request === 'webgpu' || request === '@tensorflow/tfjs-backend-webgpu') throw Object.assign(new Error("Cannot find module '" + request + "'"), { code: 'MODULE_NOT_FOUND' });
          return resolve.call(this, request, ...rest);
        };`;
      const auto = await runChild(`${hide}${select('auto')}`);
      expect(auto.stdout).to.contain('chose wasm | backend: wasm (tfjs-node-gpu not installed; webgpu: not installed: webgpu, @tensorflow/tfjs-backend-webgpu; tfjs-node not installed; ');
      const explicit = await runChild(`${hide}${select('webgpu')}`);
      expect(explicit.stdout).to.contain("error TAPFIT_E_BACKEND backend 'webgpu' needs webgpu and @tensorflow/tfjs-backend-webgpu; not installed: webgpu, @tensorflow/tfjs-backend-webgpu. npm install webgpu@0.6 @tensorflow/tfjs-backend-webgpu@4.22");
    });
  });

  describe('tfjs-node-gpu (a stand-in that registers like the real package), in a fresh process', function () {
    it("'auto' takes it first, probes no WebGPU, and neither shim touches the 'tensorflow' kernels", async () => {
      const r = await runChild(
        `backend.selectBackend('auto', { log: false }).then((s) => {
          const now = tf.getKernelsForBackend('tensorflow');
          const untouched = now.length === globalThis.standInKernels.size && now.every((k) => globalThis.standInKernels.get(k.kernelName) === k.kernelFunc);
          const dawnLoaded = Object.keys(require.cache).some((p) => /[\\\\/]webgpu[\\\\/]/.test(p));
          console.log(JSON.stringify({ name: s.name, reason: s.reason, package: s.package, shim: s.shim, guard: s.memoryGuard,
            wasmShim: backend.wasmShimInstalled(), webgpuShim: backend.webgpuShimInstalled(), untouched, dawnLoaded }));
        });`,
        { '@tensorflow/tfjs-node-gpu': fakeTfjsNodeGpu },
      );
      expect(r.code, r.stderr).to.equal(0);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
      expect(out).to.deep.equal({
        name: 'tensorflow', reason: 'backend: tensorflow via @tensorflow/tfjs-node-gpu (auto)', package: '@tensorflow/tfjs-node-gpu', shim: false, guard: null,
        wasmShim: false, webgpuShim: false, untouched: true, dawnLoaded: false,
      });
    });

    it("explicit 'tensorflow' takes tfjs-node-gpu over tfjs-node when both are installed", async () => {
      const r = await runChild(`${select('tensorflow')}`, { '@tensorflow/tfjs-node-gpu': fakeTfjsNodeGpu, '@tensorflow/tfjs-node': fakeTfjsNode });
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.contain('chose tensorflow | backend: tensorflow via @tensorflow/tfjs-node-gpu (requested)');
    });

    it('CUDA libraries missing: an error naming the backend, the libraries it needs and the fix; no fallback', async () => {
      const r = await runChild(`process.env.FAKE_CUDA_MISSING = '1';${select('auto')}`, { '@tensorflow/tfjs-node-gpu': fakeTfjsNodeGpu });
      expect(r.code).to.equal(3);
      expect(r.stdout).to.not.contain('chose');
      expect(r.stdout).to.contain("error TAPFIT_E_BACKEND backend 'tensorflow' (@tensorflow/tfjs-node-gpu) failed to load: libcudart.so.11.0: cannot open shared object file");
      expect(r.stdout).to.contain('The CUDA libraries are missing: tfjs-node-gpu 4.22 runs libtensorflow 2.9.1, which needs an NVIDIA driver, CUDA 11.2 and cuDNN 8.1');
      expect(r.stdout).to.contain("(selectBackend('wasm') or TAPFIT_BACKEND=wasm)");
    });
  });
});
