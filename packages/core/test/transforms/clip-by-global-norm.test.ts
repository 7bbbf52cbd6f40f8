// clipByGlobalNorm at the edges of float32: a norm whose square overflows, tiny and empty
// updates, non-finite entries. The trajectories under clipping are in trajectories.test.ts.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import type { NamedTensors } from '../../src/tensors';
import { clipByGlobalNorm } from '../../src/transforms';
import { useCpuBackend } from './harness';

type Values = Record<string, { shape: number[]; data: number[] }>;

/** clipByGlobalNorm(maxNorm) applied to `values`, read back. */
function clip(maxNorm: number, values: Values): Record<string, number[]> {
  return tf.tidy(() => {
    const updates: NamedTensors = {};
    for (const [k, v] of Object.entries(values)) updates[k] = tf.tensor(v.data, v.shape, 'float32');
    const [out] = clipByGlobalNorm(maxNorm).update(updates, {}, {}, { step: 0 });
    return Object.fromEntries(Object.entries(out).map(([k, u]) => [k, Array.from(u.dataSync())]));
  });
}

/** torch.nn.utils.clip_grad_norm_'s factor min(1, maxNorm / norm), in float64 on the float32 inputs. */
function reference(maxNorm: number, values: Values): Record<string, number[]> {
  const inputs = Object.values(values).flatMap((v) => v.data.map(Math.fround));
  const norm = Math.sqrt(inputs.reduce((s, x) => s + x * x, 0));
  const factor = norm > maxNorm ? maxNorm / norm : 1;
  return Object.fromEntries(Object.entries(values).map(([k, v]) => [k, v.data.map((x) => Math.fround(x) * factor)]));
}

function expectClose(actual: Record<string, number[]>, expected: Record<string, number[]>, rtol = 1e-6): void {
  for (const [k, xs] of Object.entries(expected)) {
    xs.forEach((r, i) => {
      const a = actual[k][i];
      if (!(Math.abs(a - r) <= rtol * Math.abs(r))) expect.fail(`${k}[${i}]: got ${a}, reference ${r}`);
    });
  }
}

const vector = (...data: number[]) => ({ shape: [data.length], data });

describe('transforms: clipByGlobalNorm at the edges of float32', () => {
  useCpuBackend();

  it('clips by direction when the sum of squares overflows float32 (norm past ~1.8e19)', () => {
    const one = { a: vector(3e19, 4e19, 0) };
    expectClose(clip(1, one), reference(1, one));
    expect(clip(1, one).a[0]).to.be.closeTo(0.6, 1e-6);
    const several = {
      a: vector(3e19, -1e18),
      b: { shape: [2, 2], data: [4e19, 2.5e-3, -7e18, 0] },
      c: { shape: [], data: [7e15] },
    };
    expectClose(clip(0.5, several), reference(0.5, several));
    // Largest entries near float32's maximum: the norm (~4.2e37) is still representable.
    const huge = { a: vector(3e37, -3e37, 1e30) };
    expectClose(clip(2, huge), reference(2, huge));
  });

  it('clips by direction when the norm itself is past float32\'s maximum (finite entries near 3.4e38)', () => {
    // The norm (4.2e38) is not representable; the factor must not become maxNorm / Inf = 0.
    const beyond = { a: vector(3e38, 3e38) };
    expectClose(clip(1, beyond), reference(1, beyond));
    expect(clip(1, beyond).a[0]).to.be.closeTo(Math.SQRT1_2, 1e-6);
    expectClose(clip(1e38, beyond), reference(1e38, beyond));
    const several = { a: vector(3.4e38, -1e38), b: { shape: [2], data: [-3.4e38, 1e30] } };
    expectClose(clip(0.5, several), reference(0.5, several));
    // A norm near float32's maximum yet under maxNorm: untouched.
    const under = { a: vector(2e38, 2e38, -1) };
    expect(clip(3e38, under)).to.deep.equal({ a: under.a.data.map(Math.fround) });
  });

  it('clips with a maxNorm so small that the squares underflow float32 (norm under ~1e-19)', () => {
    const tiny = { a: vector(3e-25, 4e-25, 0), b: vector(-1e-26) };
    expectClose(clip(1e-25, tiny), reference(1e-25, tiny), 1e-5);
    expect(clip(1e-25, tiny).a[0]).to.be.closeTo((3e-25 * 1e-25) / Math.hypot(3e-25, 4e-25, 1e-26), 1e-31); // not left at 3e-25
    const under = { a: vector(3e-20, 4e-20) };
    expect(clip(1e-19, under)).to.deep.equal({ a: under.a.data.map(Math.fround) }); // norm 5e-20 <= maxNorm: untouched
  });

  it('leaves an update alone when its norm is past the range of squares but under maxNorm', () => {
    const big = { a: vector(3e19, 4e19, -1) };
    expect(clip(1e20, big)).to.deep.equal({ a: big.a.data.map(Math.fround) });
  });

  it('for norms whose square fits, gives the same bits as the plain norm sqrt(sum u^2)', () => {
    const cases: Values[] = [
      { a: vector(3, 4, 0) },
      { a: vector(0.3, -1.7, 2.2), b: { shape: [2, 2], data: [5.5, -0.01, 1e-3, 8] } },
      { a: vector(3e-25, 4e-25, 0) },
      { a: vector(1e18, -2e18), b: vector(0.5) },
    ];
    for (const maxNorm of [0.5, 1, 7, 1e3]) {
      for (const values of cases) {
        const plain = tf.tidy(() => {
          const us = Object.values(values).map((v) => tf.tensor(v.data, v.shape, 'float32'));
          const norm = tf.sqrt(tf.addN(us.map((u) => tf.sum(tf.square(u)))));
          const factor = tf.div(maxNorm, tf.maximum(norm, maxNorm));
          return Object.fromEntries(Object.keys(values).map((k, i) => [k, Array.from(tf.mul(us[i], factor).dataSync())]));
        });
        expect(clip(maxNorm, values), `maxNorm ${maxNorm}, ${JSON.stringify(values)}`).to.deep.equal(plain);
      }
    }
  });

  it('passes zero and zero-size updates through', () => {
    expect(clip(1, { a: vector(0, 0, 0), e: vector() })).to.deep.equal({ a: [0, 0, 0], e: [] });
    expect(clip(1, { e: vector() })).to.deep.equal({ e: [] });
    expect(clip(1, { a: vector(3, 4), e: vector() })).to.deep.equal({ a: [Math.fround(0.6), Math.fround(0.8)], e: [] });
  });

  it('an Inf or NaN entry gives what clip_grad_norm_ gives (Inf: factor 0; NaN: NaN)', () => {
    const inf = clip(1, { a: vector(Infinity, 1, -1) }).a;
    expect(inf[0]).to.be.NaN; // Inf * 0
    expect(inf.slice(1).map(Math.abs)).to.deep.equal([0, 0]);
    expect(clip(1, { a: vector(NaN, 1, 1) }).a.every(Number.isNaN)).to.equal(true);
  });
});
