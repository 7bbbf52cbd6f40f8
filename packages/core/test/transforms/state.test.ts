import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import {
  adamw,
  chain,
  checkStateMatches,
  clipByGlobalNorm,
  cosineDecay,
  deserializeState,
  disposeState,
  linearWarmup,
  serializeState,
  sgd,
  stateTensors,
  type Chain,
  type TransformState,
} from '../../src/transforms';
import { makeParams, runTransform, useCpuBackend } from './harness';
import { problem } from './reference';

// Fresh instances each time, as a resumed process would build them.
const optimizers: Record<string, () => Chain> = {
  'clipped sgd with nesterov, weight decay and a warmup-cosine schedule': () =>
    chain(
      clipByGlobalNorm(3),
      sgd({
        lr: linearWarmup({ warmupSteps: 5, then: cosineDecay({ initial: 0.05, decaySteps: 40 }) }),
        momentum: 0.9,
        nesterov: true,
        weightDecay: 0.01,
      }),
    ),
  'adamw with a cosine schedule': () => adamw({ lr: cosineDecay({ initial: 0.05, decaySteps: 50, alpha: 0.1 }), weightDecay: 0.05 }),
};

describe('transforms: state', () => {
  useCpuBackend();

  for (const [label, make] of Object.entries(optimizers)) {
    it(`resuming from a JSON round-trip continues bit for bit: ${label}`, () => {
      const whole = runTransform(make(), 50);
      const first = runTransform(make(), 20);
      const json = JSON.parse(JSON.stringify(serializeState(first.state)));
      const restored = deserializeState(json);
      const template = make().init(first.params);
      checkStateMatches(template, restored);
      disposeState(template, []);
      // The restored tensors equal the originals exactly.
      expect(serializeState(restored)).to.deep.equal(serializeState(first.state));
      const resumed = runTransform(make(), 30, {
        params: first.trajectory[19],
        state: restored as ReturnType<Chain['init']>,
        firstStep: 20,
      });
      expect([...first.trajectory, ...resumed.trajectory]).to.deep.equal(whole.trajectory);
      whole.dispose();
      first.dispose();
      resumed.dispose(); // the restored tensors were replaced (and disposed) by the resumed steps
    });
  }

  it('serialises tensors as { $tensor: { shape, dtype, data } } and numbers as numbers', () => {
    const state = { count: 3, nested: { v: tf.tensor([[1.5, -2]], [1, 2]), n: tf.tensor([4], [1], 'int32') } };
    expect(serializeState(state)).to.deep.equal({
      count: 3,
      nested: {
        v: { $tensor: { shape: [1, 2], dtype: 'float32', data: [1.5, -2] } },
        n: { $tensor: { shape: [1], dtype: 'int32', data: [4] } },
      },
    });
    const back = deserializeState(serializeState(state)) as { nested: { n: tf.Tensor } };
    expect(back.nested.n.dtype).to.equal('int32');
    disposeState(state, []);
    disposeState(back, []);
  });

  it('refuses to serialise non-finite values (a diverged run), naming the entry', () => {
    const state = { momentum: { velocity: { w: tf.tensor([1, NaN]) } } };
    expect(() => serializeState(state))
      .to.throw("optimizer state entry 'momentum.velocity.w' holds NaN at flat index 1")
      .with.property('code', 'TAPFIT_E_STATE');
    expect(() => serializeState({ count: Infinity })).to.throw(/'count' is Infinity/);
    disposeState(state, []);
  });

  it('rejects malformed JSON with the entry path, creating no tensors', () => {
    const before = tf.memory().numTensors;
    const good = { $tensor: { shape: [2], dtype: 'float32', data: [1, 2] } };
    const cases: Array<[unknown, RegExp]> = [
      [{ a: good, b: { $tensor: { shape: [3], dtype: 'float32', data: [1, 2] } } }, /'b' has 2 values but shape \[3\] needs 3/],
      [{ a: good, b: { $tensor: { shape: [2], dtype: 'complex64', data: [1, 2] } } }, /'b' has an invalid dtype/],
      [{ a: good, b: { c: 'x' } }, /'b.c' is "x"/],
      [{ a: good, b: { $tensor: { shape: [-1], dtype: 'float32', data: [] } } }, /'b' has an invalid shape/],
      [{ a: good, b: { $tensor: { shape: [1], dtype: 'float32', data: ['1'] } } }, /'b' has invalid data/],
    ];
    for (const [json, message] of cases) {
      expect(() => deserializeState(json)).to.throw(message).with.property('code', 'TAPFIT_E_STATE');
    }
    expect(tf.memory().numTensors).to.equal(before);
  });

  it('checkStateMatches: accepts the same layout, reports every difference', () => {
    const opt = sgd({ lr: 0.1, momentum: 0.9 });
    const params = makeParams(problem.w0);
    const a = opt.init(params);
    const b = opt.init(params);
    expect(() => checkStateMatches(a, b)).not.to.throw();
    const other = makeParams({ w1: [1, 2], w2: [1, 2, 3, 4], b: [0] }, { ...problem, shapes: { ...problem.shapes, w1: [2] } });
    const c = opt.init(other);
    expect(() => checkStateMatches(a, c, 'checkpoint'))
      .to.throw("checkpoint does not match the transform: momentum.velocity.w1: expected float32[3], found float32[2]")
      .with.property('code', 'TAPFIT_E_STATE');
    expect(() => checkStateMatches(a, { lr: { count: 0 }, extra: {} })).to.throw(/momentum: expected a record, found nothing; .*extra: unexpected entry/);
    tf.dispose([...Object.values(params), ...Object.values(other), ...stateTensors(a), ...stateTensors(b), ...stateTensors(c)]);
  });

  it('stateTensors lists each tensor once; disposeState spares what the new state keeps', () => {
    const shared = tf.tensor([1]);
    const replaced = tf.tensor([2]);
    const old: TransformState = { a: { x: shared, y: replaced }, b: { again: shared }, n: 1 };
    expect(stateTensors(old)).to.deep.equal([shared, replaced]);
    const fresh = tf.tensor([3]);
    disposeState(old, { a: { x: shared, y: fresh } });
    expect(replaced.isDisposed).to.equal(true);
    expect(shared.isDisposed).to.equal(false);
    tf.dispose([shared, fresh]);
  });
});
