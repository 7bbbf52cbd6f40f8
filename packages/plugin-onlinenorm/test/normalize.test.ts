import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { installTapeRelease } from '@tapfit/core';
import { createOnlineNormState, disposeOnlineNormState, onlineNormalize, readFiniteChecks, type NormalizeArgs, type OnlineNormState } from '../src';
import { expectClose, expectNoLeak, normal, randomInput, rng, toSamples } from './helpers';
import { refBackward, refForward, refState, type RefState, type Sample } from './reference';

/** One training call: forward (updates M, V) and backward with upstream gradient g (updates u, v). */
function trainCall(x: tf.Tensor, g: tf.Tensor, state: OnlineNormState, args: Partial<NormalizeArgs> = {}): { y: Float32Array; dx: Float32Array } {
  const full: NormalizeArgs = { mode: 'train', alphaFwd: 0.999, alphaBkw: 0.99, epsilon: 1e-5, checkFiniteEvery: 1, ...args };
  return tf.tidy(() => {
    const { value, grads } = tf.valueAndGrads((input: tf.Tensor) => onlineNormalize(input, state, full))([x], g);
    return { y: value.dataSync() as Float32Array, dx: grads[0].dataSync() as Float32Array };
  });
}

function expectState(state: OnlineNormState, ref: RefState, tol: number, what: string): void {
  expectClose(state.mean, ref.M, tol, `${what} M`);
  expectClose(state.variance, ref.V, tol, `${what} V`);
  expectClose(state.u, ref.u, tol, `${what} u`);
  expectClose(state.v, ref.v, tol, `${what} v`);
}

describe('onlineNormalize', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const recurrences of ['host', 'device'] as const)
  describe(`matches the float64 reference of docs/techniques.md §6.2/§6.3 over several batches (state carried), recurrences on the ${recurrences}`, () => {
    const cases = [
      { what: 'dense [N, 4]', inner: [4], alphaFwd: 0.999, alphaBkw: 0.99, batches: [8, 1, 5, 32] },
      { what: 'dense [N, 3], fast alphas, a batch longer than one scan chunk', inner: [3], alphaFwd: 0.9, alphaBkw: 0.5, batches: [4, 7, 1, 200] },
      { what: 'conv2d [N, 3, 3, 2]', inner: [3, 3, 2], alphaFwd: 0.95, alphaBkw: 0.9, batches: [2, 1, 6] },
      { what: 'conv3d [N, 2, 2, 3, 2]', inner: [2, 2, 3, 2], alphaFwd: 0.99, alphaBkw: 0.9, batches: [3, 2] },
      { what: 'conv1d [N, 5, 3]', inner: [5, 3], alphaFwd: 0.8, alphaBkw: 0.7, batches: [4, 4] },
    ];
    for (const { what, inner, alphaFwd, alphaBkw, batches } of cases) {
      it(what, () => {
        const channels = inner[inner.length - 1];
        const state = createOnlineNormState(channels, 'ref');
        const ref = refState(channels);
        batches.forEach((n, k) => {
          const x = randomInput([n, ...inner], 10 + k, 2, 3);
          const g = randomInput([n, ...inner], 100 + k);
          const { y, dx } = trainCall(x, g, state, { alphaFwd, alphaBkw, recurrences });
          const fwd = refForward(toSamples(x), ref, alphaFwd, 1e-5);
          const bwd = refBackward(toSamples(g), fwd.y, fwd.scale, ref, alphaBkw);
          expectClose(y, fwd.y, 1e-4, `batch ${k} y`);
          expectClose(dx, bwd.dx, 1e-4, `batch ${k} dx`);
          expectState(state, ref, 1e-4, `batch ${k}`);
          tf.dispose([x, g]);
        });
        disposeOnlineNormState(state);
      });
    }

    it('a recurrent use: one state over 4 time steps, backward calls arriving in reverse time order', () => {
      const channels = 3;
      const steps = 4;
      const state = createOnlineNormState(channels, 'cell');
      const xs = Array.from({ length: steps }, (_, t) => randomInput([5, channels], 20 + t, 1, 2));
      const gs = Array.from({ length: steps }, (_, t) => randomInput([5, channels], 200 + t));
      const args: NormalizeArgs = { mode: 'train', alphaFwd: 0.9, alphaBkw: 0.8, epsilon: 1e-5, recurrences };
      // h_t = ON(x_t + 0.5 h_{t-1}); loss = sum_t <h_t, g_t>.
      const dxs = tf.tidy(() => {
        const loss = (...inputs: tf.Tensor[]) => {
          let h: tf.Tensor | null = null;
          let total = tf.scalar(0);
          inputs.forEach((x, t) => {
            h = onlineNormalize(h ? tf.add(x, tf.mul(h, 0.5)) : x, state, args);
            total = tf.add(total, tf.sum(tf.mul(h, gs[t])));
          });
          return total;
        };
        return tf.grads(loss)(xs).map((d) => d.dataSync());
      });
      const ref = refState(channels);
      const fwd: { y: Sample[]; scale: number[][] }[] = [];
      let prev: Sample[] | null = null;
      for (let t = 0; t < steps; t++) {
        const input: Sample[] = toSamples(xs[t]).map((s, i) => s.map((row, p) => row.map((v, c) => v + (prev ? 0.5 * prev[i][p][c] : 0))));
        fwd.push(refForward(input, ref, 0.9, 1e-5));
        prev = fwd[t].y;
      }
      let carry: Sample[] | null = null;
      const refDx: Sample[][] = [];
      for (let t = steps - 1; t >= 0; t--) {
        const dy: Sample[] = toSamples(gs[t]).map((s, i) => s.map((row, p) => row.map((v, c) => v + (carry ? 0.5 * carry[i][p][c] : 0))));
        const { dx } = refBackward(dy, fwd[t].y, fwd[t].scale, ref, 0.8);
        refDx[t] = dx;
        carry = dx;
      }
      dxs.forEach((d, t) => expectClose(d, refDx[t], 1e-4, `dx_${t}`));
      expectState(state, ref, 1e-4, 'after the sequence');
      tf.dispose([...xs, ...gs]);
      disposeOnlineNormState(state);
    });
  });

  describe('docs/techniques.md §6.8 invariants', () => {
    it('first sample ever: y_1 = x_1 / sqrt(1 + eps)', () => {
      const state = createOnlineNormState(3);
      const x = randomInput([1, 3], 1, 5, 2);
      const y = tf.tidy(() => onlineNormalize(x, state, { mode: 'train', alphaFwd: 0.9, alphaBkw: 0.9, epsilon: 1e-5 }).dataSync());
      expectClose(y, Array.from(x.dataSync()).map((v) => v / Math.sqrt(1 + 1e-5)), 1e-6, 'y_1');
      tf.dispose(x);
      disposeOnlineNormState(state);
    });

    it('alpha_fwd = 1: the statistics never change (M = 0, V = 1)', () => {
      const state = createOnlineNormState(2);
      for (let k = 0; k < 3; k++) {
        const x = randomInput([6, 2, 2, 2], k, 3, 2);
        const g = randomInput([6, 2, 2, 2], 50 + k);
        const { y } = trainCall(x, g, state, { alphaFwd: 1 });
        expectClose(y, Array.from(x.dataSync()).map((v) => v / Math.sqrt(1 + 1e-5)), 1e-6, `y batch ${k}`);
        tf.dispose([x, g]);
      }
      expect(Array.from(state.mean.dataSync())).to.deep.equal([0, 0]);
      expect(Array.from(state.variance.dataSync())).to.deep.equal([1, 1]);
      disposeOnlineNormState(state);
    });

    it('alpha_bkw = 1: the backward is exactly dx = g / sqrt(V_{t-1} + eps) (no control)', () => {
      const state = createOnlineNormState(3);
      const ref = refState(3);
      for (let k = 0; k < 3; k++) {
        const x = randomInput([5, 2, 3], k, 1, 2);
        const g = randomInput([5, 2, 3], 70 + k);
        const { dx } = trainCall(x, g, state, { alphaFwd: 0.7, alphaBkw: 1 });
        const { scale } = refForward(toSamples(x), ref, 0.7, 1e-5);
        const expected = toSamples(g).map((s, i) => s.map((row) => row.map((v, c) => v / scale[i][c])));
        expectClose(dx, expected, 1e-5, `dx batch ${k}`);
        tf.dispose([x, g]);
      }
      disposeOnlineNormState(state);
    });

    it('stationary inputs: M -> mu0, V -> s0^2, outputs have running mean ~0 and variance ~1', () => {
      const mu0 = [3, -2];
      const s0 = [2, 0.5];
      const draw = normal(rng(7));
      const state = createOnlineNormState(2);
      const outputs: number[][] = [];
      const args: NormalizeArgs = { mode: 'train', alphaFwd: 0.99, alphaBkw: 0.99, epsilon: 1e-5 };
      for (let k = 0; k < 40; k++) {
        const data: number[] = [];
        for (let i = 0; i < 100; i++) data.push(mu0[0] + s0[0] * draw(), mu0[1] + s0[1] * draw());
        const y = tf.tidy(() => onlineNormalize(tf.tensor2d(data, [100, 2]), state, args).arraySync() as number[][]);
        if (k >= 30) outputs.push(...y);
      }
      const M = state.mean.dataSync();
      const V = state.variance.dataSync();
      for (let c = 0; c < 2; c++) {
        // The EMA's own noise: std(M) ~ s0 sqrt((1-a)/(1+a)) ~ 0.07 s0.
        expect(Math.abs(M[c] - mu0[c]), `M[${c}]`).to.be.below(0.3 * s0[c]);
        expect(V[c] / s0[c] ** 2, `V[${c}] / s0^2`).to.be.within(0.65, 1.35);
        const col = outputs.map((r) => r[c]);
        const m = col.reduce((a, b) => a + b, 0) / col.length;
        const v = col.reduce((a, b) => a + (b - m) ** 2, 0) / col.length;
        expect(Math.abs(m), `output mean[${c}]`).to.be.below(0.15);
        expect(v, `output variance[${c}]`).to.be.within(0.8, 1.25);
      }
      disposeOnlineNormState(state);
    });

    it('accumulator identities: sum_t mean(dx_t) = u_T - u_0 and sum_t <gt_t, y_t> = v_T - v_0', () => {
      const state = createOnlineNormState(2);
      const b = 0.9;
      // Warm up so u_0, v_0 are not zero.
      const x0 = randomInput([8, 3, 2], 1, 1, 2);
      const g0 = randomInput([8, 3, 2], 2);
      trainCall(x0, g0, state, { alphaFwd: 0.95, alphaBkw: b });
      const u0 = Array.from(state.u.dataSync());
      const v0 = Array.from(state.v.dataSync());
      const sumMeanDx = [0, 0];
      const sumGtY = [0, 0];
      for (let t = 0; t < 30; t++) {
        // Batch size 1, so v_{t-1} can be read between samples to form gt_t.
        const x = randomInput([1, 3, 2], 10 + t, 1, 2);
        const g = randomInput([1, 3, 2], 100 + t);
        const vBefore = Array.from(state.v.dataSync());
        const { y, dx } = trainCall(x, g, state, { alphaFwd: 0.95, alphaBkw: b });
        const gData = g.dataSync();
        for (let c = 0; c < 2; c++) {
          for (let p = 0; p < 3; p++) {
            const i = p * 2 + c;
            sumMeanDx[c] += dx[i] / 3;
            sumGtY[c] += ((gData[i] - (1 - b) * vBefore[c] * y[i]) * y[i]) / 3;
          }
        }
        tf.dispose([x, g]);
      }
      const u = state.u.dataSync();
      const v = state.v.dataSync();
      expectClose([u[0] - u0[0], u[1] - u0[1]], sumMeanDx, 1e-4, 'sum mean(dx)');
      expectClose([v[0] - v0[0], v[1] - v0[1]], sumGtY, 1e-4, 'sum <gt, y>');
      tf.dispose([x0, g0]);
      disposeOnlineNormState(state);
    });

    it('accumulators stay bounded under random bounded gradients, so time averages of mean(dx) and <gt, y> -> 0', () => {
      const state = createOnlineNormState(2);
      const b = 0.95;
      let maxU = 0;
      let maxV = 0;
      let steps = 0;
      let maxMeanH = 0;
      for (let k = 0; k < 60; k++) {
        const x = randomInput([50, 2], 300 + k, 0.5, 1);
        const rand = rng(900 + k);
        const g = tf.tensor2d(Array.from({ length: 100 }, () => 2 * rand() - 1), [50, 2]);
        trainCall(x, g, state, { alphaFwd: 0.99, alphaBkw: b });
        // |mean(h)| <= |g| / scale and scale >= sqrt(eps); with V ~ 1 the bound below is loose.
        maxMeanH = Math.max(maxMeanH, 1 / Math.sqrt(Math.min(...state.variance.dataSync()) + 1e-5));
        maxU = Math.max(maxU, ...Array.from(state.u.dataSync(), Math.abs));
        maxV = Math.max(maxV, ...Array.from(state.v.dataSync(), Math.abs));
        steps += 50;
        tf.dispose([x, g]);
      }
      // u_t = b u_{t-1} + mean(h_t) gives |u| <= max|mean(h)| / (1-b).
      expect(maxU).to.be.below((2 * maxMeanH) / (1 - b));
      expect(maxV).to.be.below(100);
      for (const value of [...state.u.dataSync(), ...state.v.dataSync()]) expect(Math.abs(value) / steps).to.be.below(0.01);
      disposeOnlineNormState(state);
    });

    it('batch invariance: any batching of the same sample order gives the same outputs, gradients and final state (host and device recurrences)', () => {
      const total = 24;
      const x = randomInput([total, 2, 2, 3], 5, 1.5, 2);
      const g = randomInput([total, 2, 2, 3], 6);
      const run = (sizes: number[], recurrences: 'host' | 'device' = 'host') => {
        const state = createOnlineNormState(3);
        const ys: number[] = [];
        const dxs: number[] = [];
        let offset = 0;
        for (const n of sizes) {
          const xb = x.slice([offset, 0, 0, 0], [n, -1, -1, -1]);
          const gb = g.slice([offset, 0, 0, 0], [n, -1, -1, -1]);
          const { y, dx } = trainCall(xb, gb, state, { alphaFwd: 0.9, alphaBkw: 0.8, recurrences });
          ys.push(...y);
          dxs.push(...dx);
          offset += n;
          tf.dispose([xb, gb]);
        }
        const stats = [state.mean, state.variance, state.u, state.v].map((t) => Array.from(t.dataSync()));
        disposeOnlineNormState(state);
        return { ys, dxs, stats };
      };
      const base = run(Array(total).fill(1));
      for (const [sizes, recurrences] of [[[total], 'host'], [[3, 5, 7, 9], 'host'], [[10, 1, 13], 'host'], [[total], 'device'], [[3, 5, 7, 9], 'device'], [Array(total).fill(1), 'device']] as const) {
        const other = run([...sizes], recurrences);
        const what = `batches ${sizes} on the ${recurrences}`;
        expectClose(other.ys, base.ys, 1e-5, `y, ${what}`);
        expectClose(other.dxs, base.dxs, 1e-5, `dx, ${what}`);
        other.stats.forEach((s, i) => expectClose(s, base.stats[i], 1e-5, `state ${['M', 'V', 'u', 'v'][i]}, ${what}`));
      }
      tf.dispose([x, g]);
    });

    it('inference mode does not modify M, V, u, v (forward or backward) and uses the running statistics', () => {
      const state = createOnlineNormState(2);
      const x = randomInput([6, 2], 1, 2, 2);
      trainCall(x, randomInput([6, 2], 2), state, { alphaFwd: 0.9 });
      const before = [state.mean, state.variance, state.u, state.v].map((t) => Array.from(t.dataSync()));
      const { y, dx } = trainCall(x, tf.onesLike(x), state, { mode: 'inference' });
      const after = [state.mean, state.variance, state.u, state.v].map((t) => Array.from(t.dataSync()));
      expect(after).to.deep.equal(before);
      const [M, V] = before;
      expectClose(y, Array.from(x.dataSync()).map((v, i) => (v - M[i % 2]) / Math.sqrt(V[i % 2] + 1e-5)), 1e-6, 'inference y');
      expectClose(dx, Array.from(x.dataSync()).map((_, i) => 1 / Math.sqrt(V[i % 2] + 1e-5)), 1e-6, 'inference dx');
      disposeOnlineNormState(state);
      tf.dispose(x);
    });
  });

  it("'recompute' reproduces a training call's output and gradient without touching M, V", () => {
    // A: a plain training call. B: the memory executor's view of the same call: an untaped
    // forward that advances M, V, then a recomputed forward (with the statistics the first one
    // saw) whose backward runs.
    const a = createOnlineNormState(3);
    const b = createOnlineNormState(3);
    const x0 = randomInput([4, 3], 1, 1, 2);
    const g0 = randomInput([4, 3], 2);
    for (const s of [a, b]) trainCall(x0, g0, s);
    const x = randomInput([5, 3], 3, 1, 2);
    const g = randomInput([5, 3], 4);
    const expected = trainCall(x, g, a);

    const snapshot = { mean: tf.clone(b.mean), variance: tf.clone(b.variance) };
    const args: NormalizeArgs = { mode: 'train', alphaFwd: 0.999, alphaBkw: 0.99, epsilon: 1e-5 };
    tf.tidy(() => onlineNormalize(x, b, args));
    const advanced = [b.mean, b.variance].map((t) => Array.from(t.dataSync()));
    const got = trainCall(x, g, b, { mode: 'recompute', statistics: snapshot });

    expectClose(got.y, expected.y, 1e-6, 'recomputed y');
    expectClose(got.dx, expected.dx, 1e-6, 'recomputed dx');
    expect([b.mean, b.variance].map((t) => Array.from(t.dataSync())), 'recompute left M, V alone').to.deep.equal(advanced);
    [a.mean, a.variance, a.u, a.v].forEach((t, i) => expectClose([b.mean, b.variance, b.u, b.v][i], t.dataSync(), 1e-6, `state ${i}`));
    tf.dispose([x0, g0, x, g, snapshot.mean, snapshot.variance]);
    disposeOnlineNormState(a);
    disposeOnlineNormState(b);
  });

  describe('errors and hygiene', () => {
    it('leaks no tensor in training (forward + backward, host and device recurrences), inference, or a failed call', () => {
      const state = createOnlineNormState(4);
      const x = randomInput([8, 3, 3, 4], 1);
      const g = randomInput([8, 3, 3, 4], 2);
      trainCall(x, g, state);
      expectNoLeak(() => trainCall(x, g, state, { recurrences: 'host' }), 'train, host');
      // Device recurrences keep each checked commit's result (a bool vector) and the previous
      // values (two clones sharing their data) until the check is read: the next training call
      // reads its state's, so the count stays level from call to call.
      const live = tf.memory().numTensors;
      trainCall(x, g, state, { recurrences: 'device' });
      expect(tf.memory().numTensors - live, 'unread checks of one device call (M, V and u, v)').to.equal(2 * 3);
      expectNoLeak(() => trainCall(x, g, state, { recurrences: 'device' }), 'train, device');
      readFiniteChecks([state]);
      expect(tf.memory().numTensors, 'after readFiniteChecks').to.equal(live);
      expectNoLeak(() => trainCall(x, g, state, { mode: 'inference' }), 'inference');
      const bad = tf.fill([2, 4], NaN);
      const ones = tf.onesLike(bad);
      expectNoLeak(() => expect(() => trainCall(bad, ones, state)).to.throw(/non-finite/), 'failed forward');
      // A gradFunc that throws: tfjs alone would keep the tape's saved tensors; tapfit's tape release
      // (selectBackend installs it) frees them, and nothing of ours stays either.
      installTapeRelease();
      expectNoLeak(() => expect(() => trainCall(ones, bad, state)).to.throw(/non-finite/), 'failed backward');
      tf.dispose([x, g, bad, ones]);
      disposeOnlineNormState(state);
    });

    it('NaN statistics are detected with an error naming the unit and the call, and the state is left unchanged', () => {
      const state = createOnlineNormState(2, 'norm_7');
      const x = randomInput([3, 2], 1);
      trainCall(x, randomInput([3, 2], 2), state);
      trainCall(x, randomInput([3, 2], 3), state);
      const before = [state.mean, state.variance, state.u, state.v].map((t) => Array.from(t.dataSync()));
      const bad = tf.tensor2d([1, NaN, 2, 3], [2, 2]);
      expect(() => trainCall(bad, tf.onesLike(bad), state)).to.throw(/OnlineNorm 'norm_7'.*non-finite running mean\/variance.*training call 3/);
      const badGrad = tf.tensor2d([1, NaN, 2, 3, 1, 1], [3, 2]);
      expect(() => trainCall(x, badGrad, state)).to.throw(/OnlineNorm 'norm_7'.*non-finite control accumulators.*backward pass 3/);
      // The failed forward changed nothing; the forward of the failed backward did advance M, V (a forward is committed once it returns).
      const after = [state.u, state.v].map((t) => Array.from(t.dataSync()));
      expect(after).to.deep.equal(before.slice(2));
      tf.dispose([x, bad, badGrad]);
      disposeOnlineNormState(state);
    });

    it('rejects an input whose channel count differs from the state, a non-float input and a rank-1 input', () => {
      const state = createOnlineNormState(3, 'n1');
      const args: NormalizeArgs = { mode: 'train', alphaFwd: 0.9, alphaBkw: 0.9, epsilon: 1e-5 };
      expect(() => onlineNormalize(tf.zeros([2, 4]), state, args)).to.throw(/'n1'.*4 channels.*built for 3/);
      expect(() => onlineNormalize(tf.zeros([2, 3], 'int32'), state, args)).to.throw(/float32/);
      expect(() => onlineNormalize(tf.zeros([3]), state, args)).to.throw(/rank >= 2/);
      disposeOnlineNormState(state);
    });
  });
});
