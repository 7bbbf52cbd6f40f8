import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { affineScan, geometricScan } from '../src';
import { expectClose, expectNoLeak, rng } from './helpers';

/** The recurrence as a sample-by-sample float64 loop: states[0] = init, states[i+1] = coeff_i * states[i] + input_i. */
function loop(coeff: (i: number, c: number) => number, init: number[], inputs: number[][]): number[][] {
  const states = [init.slice()];
  inputs.forEach((row, i) => states.push(row.map((x, c) => coeff(i, c) * states[i][c] + x)));
  return states;
}

function randomMatrix(rows: number, cols: number, seed: number, lo = -1, hi = 1): number[][] {
  const rand = rng(seed);
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => lo + (hi - lo) * rand()));
}

describe('vectorised scans equal the sample-by-sample loop', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  // 1, a power of two, one off it, the chunk size (128) and past it (chunked).
  for (const n of [1, 2, 16, 33, 128, 129, 300]) {
    it(`geometricScan, N = ${n}`, () => {
      for (const alpha of [0.999, 0.9, 0.5, 1]) {
        const init = randomMatrix(1, 3, n)[0];
        const inputs = randomMatrix(n, 3, n + 1);
        const got = expectNoLeak(() => tf.tidy(() => geometricScan(alpha, tf.tensor1d(init), tf.tensor2d(inputs)).arraySync()), 'geometricScan');
        expect(got).to.have.length(n + 1);
        expectClose(got.flat(), loop(() => alpha, init, inputs).flat(), 1e-5, `alpha ${alpha}`);
      }
    });

    it(`affineScan with per-sample coefficients (zero and negative ones included), N = ${n}`, () => {
      const init = randomMatrix(1, 4, n)[0];
      const inputs = randomMatrix(n, 4, n + 2);
      const coeffs = randomMatrix(n, 4, n + 3, -1.2, 1.2);
      if (n > 3) coeffs[2] = [0, 0, -1, 1];
      const got = expectNoLeak(
        () => tf.tidy(() => affineScan(tf.tensor2d(coeffs), tf.tensor1d(init), tf.tensor2d(inputs)).arraySync()),
        'affineScan',
      );
      expect(got).to.have.length(n + 1);
      expectClose(got.flat(), loop((i, c) => coeffs[i][c], init, inputs).flat(), 1e-5, 'affine');
    });
  }
});
