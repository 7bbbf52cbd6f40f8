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
