import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { probeWebgpuAdapter, TENSORFLOW_MISSING_KERNELS, type BackendName } from '@tapfit/core';
import { gradientMismatch, trainOnBackend, type BackendRun } from '@tapfit/core/testing';
import { PLUGIN_MATRIX } from '../src';

const STEPS = 5;
const RTOL = 1e-3;

describe(`every plugin on every backend: ${STEPS} steps of its conformance model, first-step gradients against cpu (rtol ${RTOL})`, function () {
  let noWebgpu: string | null = null;
  before(async () => {
    const probe = await probeWebgpuAdapter();
    noWebgpu = probe.adapter ? null : probe.why;
  });
  after(() => tf.setBackend('cpu'));

  for (const entry of PLUGIN_MATRIX) {
    describe(entry.name, function () {
      let cpu: BackendRun;
      let kernels: string[];
      before(async () => {
        const profile = await tf.profile(async () => {
          cpu = await trainOnBackend(entry, 'cpu', STEPS);
          return [];
        });
        kernels = profile.kernelNames;
      });

      it(`cpu: ${STEPS} steps with finite losses, no tensor leaked, no kernel tfjs-node(-gpu) lacks`, () => {
        expect(cpu.losses).to.have.length(STEPS);
        expect(cpu.losses.every(Number.isFinite)).to.equal(true);
        expect(cpu.firstGradients.length).to.be.above(0);
        expect(cpu.leakedTensors).to.equal(0);
        expect(kernels.filter((k) => TENSORFLOW_MISSING_KERNELS.includes(k))).to.deep.equal([]);
      });

      for (const backend of ['wasm', 'webgpu'] as BackendName[]) {
        it(`${backend}: ${STEPS} steps, first-step gradients match cpu, no tensor leaked`, async function () {
          if (backend === 'webgpu' && noWebgpu) {
            console.log(`      skipped: no WebGPU here (${noWebgpu})`);
            this.skip();
          }
          const run = await trainOnBackend(entry, backend, STEPS);
          expect(run.losses).to.have.length(STEPS);
          expect(gradientMismatch(run, cpu, RTOL)).to.equal(null);
          expect(run.leakedTensors).to.equal(0);
        });
      }
    });
  }
});

// `threads: 'auto'` picks the wasm thread count from the machine's load, so the suite above
// may run wasm with one thread or two. The multi-threaded build takes other kernel routes
// (XNNPACK's threaded products in another order), so every entry also runs there, in a
// child process whose wasm is started with 2 threads.
describe('every plugin on wasm with 2 threads (child process): first-step gradients against cpu', function () {
  this.timeout(180_000);

  it(`all ${PLUGIN_MATRIX.length} entries: ${STEPS} steps, gradients match cpu (rtol ${RTOL}), no tensor leaked`, () => {
    const script = `
      const { selectBackend } = require('@tapfit/core');
      const { gradientMismatch, trainOnBackend } = require('@tapfit/core/testing');
      const { PLUGIN_MATRIX } = require(${JSON.stringify(path.resolve(__dirname, '../src'))});
      (async () => {
        const selection = await selectBackend('wasm', { threads: 2, log: false });
        const problems = [];
        for (const entry of PLUGIN_MATRIX) {
          try {
            const cpu = await trainOnBackend(entry, 'cpu', ${STEPS});
            const wasm = await trainOnBackend(entry, 'wasm', ${STEPS});
            const mismatch = gradientMismatch(wasm, cpu, ${RTOL});
            if (mismatch || wasm.leakedTensors !== 0 || wasm.losses.length !== ${STEPS}) problems.push(entry.name + ': ' + (mismatch ?? 'leaked ' + wasm.leakedTensors + ', ' + wasm.losses.length + ' steps'));
          } catch (err) {
            problems.push(entry.name + ': ' + String(err).split('\\n')[0]);
          }
        }
        console.log(JSON.stringify({ threads: selection.threads, problems }));
      })();
    `;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', cwd: path.resolve(__dirname, '..'), timeout: 170_000 });
    expect(r.status, r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.threads).to.equal(2);
    expect(out.problems).to.deep.equal([]);
  });
});
