import * as tf from '@tensorflow/tfjs';
import { cases, expectGradientsMatchCpu } from './gradient-cases';
import { webgpuOrSkip } from './helpers';

// The wasm table's method on webgpu: every gradient the plugins use, against cpu and finite differences.
describe('backend: gradients on webgpu vs cpu vs finite differences', function () {
  let wasTest: boolean;
  before(async function () {
    await webgpuOrSkip(this, 'webgpu gradients');
    wasTest = tf.env().getBool('IS_TEST');
  });
  afterEach(() => tf.env().set('IS_TEST', wasTest));
  after(() => tf.setBackend('cpu'));

  for (const [name, c] of Object.entries(cases)) {
    it(name, async () => {
      tf.env().set('IS_TEST', c.kernelLeakCheck !== false);
      await expectGradientsMatchCpu(c);
    });
  }
});
