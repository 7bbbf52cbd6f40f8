import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';
import { expect } from 'chai';
import { createOnlineNormState, disposeOnlineNormState, onlineNormalize, type NormalizeArgs } from '../src';
import { expectClose, expectNoLeak, randomInput, toSamples } from './helpers';
import { refBackward, refForward, refState } from './reference';

// wasm is the embedded default backend; 'auto' puts the recurrences on the host there.
describe('onlineNormalize on the wasm backend matches the float64 reference', () => {
  before(async () => {
    expect(await tf.setBackend('wasm'), 'wasm backend initialised').to.equal(true);
  });
  after(async () => {
    await tf.setBackend('cpu');
  });

  for (const recurrences of ['auto', 'device'] as const) {
    for (const inner of [[5], [3, 3, 4]]) {
      it(`input [N, ${inner}], recurrences '${recurrences}'`, () => {
        const channels = inner[inner.length - 1];
        const state = createOnlineNormState(channels);
        const ref = refState(channels);
        const args: NormalizeArgs = { mode: 'train', alphaFwd: 0.95, alphaBkw: 0.9, epsilon: 1e-5, recurrences };
        [6, 1, 9].forEach((n, k) => {
          const x = randomInput([n, ...inner], 40 + k, 1, 2);
          const g = randomInput([n, ...inner], 80 + k);
          const step = () =>
            tf.tidy(() => {
              const { value, grads } = tf.valueAndGrads((input: tf.Tensor) => onlineNormalize(input, state, args))([x], g);
              return { y: value.dataSync(), dx: grads[0].dataSync() };
            });
          const { y, dx } = k === 0 ? step() : expectNoLeak(step, 'wasm step');
          const fwd = refForward(toSamples(x), ref, 0.95, 1e-5);
          const { dx: refDx } = refBackward(toSamples(g), fwd.y, fwd.scale, ref, 0.9);
          expectClose(y, fwd.y, 1e-4, `batch ${k} y`);
          expectClose(dx, refDx, 1e-4, `batch ${k} dx`);
          expectClose(state.u, ref.u, 1e-4, `batch ${k} u`);
          expectClose(state.v, ref.v, 1e-4, `batch ${k} v`);
          tf.dispose([x, g]);
        });
        disposeOnlineNormState(state);
      });
    }
  }
});
