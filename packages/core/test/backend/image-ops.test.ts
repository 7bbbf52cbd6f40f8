import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { type Box, cropReference, onBackendOrSkip } from './helpers';

/*
 * Image ops used for augmentation and region crops, on cpu, wasm and webgpu where there is
 * an adapter, against float64 references: tf.image.transform (cpu transformed only the
 * first image of a batch, webgpu read wrong pixels: wasm-shim/transform-batch.ts,
 * webgpu-shim/cpu-bridge.ts) and tf.image.cropAndResize (webgpu read the wrong image for
 * some box indices).
 */

const SHAPE = [3, 5, 6, 2];
const IMAGE = Array.from({ length: 180 }, (_, i) => (Math.sin(i * 1.7) + 1) * 100);

/** Float64 projective transform, constant fill: output (x, y) reads input ((a0 x + a1 y + a2) / k, (b0 x + b1 y + b2) / k), k = c0 x + c1 y + 1. */
function transformReference(image: number[], [B, H, W, C]: number[], rows: number[][], method: 'bilinear' | 'nearest', fill: number): number[] {
  const px = (b: number, y: number, x: number, c: number) => (y >= 0 && y < H && x >= 0 && x < W ? image[((b * H + y) * W + x) * C + c] : fill);
  const out: number[] = [];
  for (let b = 0; b < B; b++) {
    const t = rows[rows.length === 1 ? 0 : b];
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const k = t[6] * x + t[7] * y + 1;
        const [ix, iy] = [(t[0] * x + t[1] * y + t[2]) / k, (t[3] * x + t[4] * y + t[5]) / k];
        for (let c = 0; c < C; c++) {
          if (method === 'nearest') out.push(px(b, Math.round(iy), Math.round(ix), c));
          else {
            const [y0, x0] = [Math.floor(iy), Math.floor(ix)];
            const [ly, lx] = [iy - y0, ix - x0];
            out.push((1 - ly) * ((1 - lx) * px(b, y0, x0, c) + lx * px(b, y0, x0 + 1, c)) + ly * ((1 - lx) * px(b, y0 + 1, x0, c) + lx * px(b, y0 + 1, x0 + 1, c)));
          }
        }
      }
    }
  }
  return out;
}

function close(actual: ArrayLike<number>, expected: number[], what: string): void {
  expect(actual.length, what).to.equal(expected.length);
  expected.forEach((v, i) => expect(actual[i], `${what}: element ${i}`).to.be.closeTo(v, 1e-3));
}

for (const backend of ['cpu', 'wasm', 'webgpu']) {
  describe(`backend: image ops against float64 references, on ${backend}`, function () {
    before(async function () {
      await onBackendOrSkip(this, backend, 'image ops on webgpu');
    });
    after(() => tf.setBackend('cpu'));

    it('transform: every image of a batch, one shared or one transform each, bilinear and nearest', () => {
      // Shears and shifts whose sampling points never land half-way between pixels (no rounding ties).
      const rows = [[1, 0.13, 0.37, 0.21, 1, -0.29, 0, 0], [0.9, -0.11, 1.23, 0.07, 1.1, 0.31, 0.01, 0], [1, 0, -0.61, 0, 1, 0.77, 0, 0.02]];
      for (const method of ['bilinear', 'nearest'] as const) {
        for (const used of [rows.slice(0, 1), rows]) {
          const dataIds = tf.backend().numDataIds();
          const got = tf.tidy(() => tf.image.transform(tf.tensor4d(IMAGE, SHAPE as [number, number, number, number]), tf.tensor2d(used), method, 'constant', 3).dataSync());
          close(got, transformReference(IMAGE, SHAPE, used, method, 3), `${method}, ${used.length} transform(s)`);
          expect(tf.backend().numDataIds(), 'backend data left behind').to.equal(dataIds);
        }
      }
    });

    it('cropAndResize: the image each box names, for every pattern of box indices', () => {
      const box: Box = { y1: 0.13, x1: 0.07, y2: 0.81, x2: 0.94 };
      for (const indices of [[1], [2], [0, 2], [1, 0], [2, 0, 1]]) {
        const boxes = indices.map(() => box);
        for (const method of ['bilinear', 'nearest'] as const) {
          const got = tf.tidy(() => tf.image.cropAndResize(tf.tensor4d(IMAGE, SHAPE as [number, number, number, number]), tf.tensor2d(boxes.map((b) => [b.y1, b.x1, b.y2, b.x2])), indices, [4, 3], method, 0).dataSync());
          close(got, cropReference(IMAGE, SHAPE, boxes, indices, [4, 3], method, 0), `${method}, box indices ${indices}`);
        }
      }
    });
  });
}
