import * as tf from '@tensorflow/tfjs';
import { cases, expectGradientsMatchCpu } from './gradient-cases';
import { useShimmedWasm } from './helpers';

describe('backend: gradients on shimmed wasm vs cpu vs finite differences', function () {
  // IS_TEST makes the engine check every kernel for leaked backend data (composites free their intermediates).
  let wasTest: boolean;
  before(async () => {
    await useShimmedWasm();
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
