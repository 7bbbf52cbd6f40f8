import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import {
  adadelta,
  adagrad,
  adam,
  adamax,
  chain,
  clipByGlobalNorm,
  constant,
  findTransform,
  insertTransform,
  isChain,
  momentum,
  optimizerByName,
  removeTransform,
  replaceTransform,
  rmsprop,
  scaleByLearningRate,
  sgd,
  stateTensors,
  type Chain,
  type StepTransform,
} from '../../src/transforms';
import { expectTrajectoryClose, runTransform, useCpuBackend } from './harness';
import { problem, referenceTrajectory, refSgd } from './reference';

const names = (c: Chain) => c.transforms.map((t) => t.name);

/** A transform that records the updates it received and emits them times `k`. */
function recorder(name: string, k: number, seen: string[]): StepTransform {
  return {
    name,
    init: () => ({ calls: 0 }),
    update(updates, state) {
      seen.push(`${name}:${Array.from(updates.x.dataSync()).join(',')}`);
      return [{ x: tf.mul(updates.x, k) }, { calls: (state.calls as number) + 1 }];
    },
  };
}

describe('transforms: chain', () => {
  useCpuBackend();

  it('runs members in order, feeding each the previous updates', () => {
    const seen: string[] = [];
    const c = chain(recorder('a', 2, seen), recorder('b', 10, seen));
    const x = tf.tensor([1, 2]);
    let state = {};
    const out = tf.tidy(() => {
      const [u, s] = c.update({ x }, c.init({ x }), { x }, { step: 0 });
      state = s;
      return u.x;
    });
    expect(seen).to.deep.equal(['a:1,2', 'b:2,4']);
    expect(Array.from(out.dataSync())).to.deep.equal([20, 40]);
    expect(state).to.deep.equal({ a: { calls: 1 }, b: { calls: 1 } });
    tf.dispose([x, out]);
  });

  it('keys the state by member name, nested chains nested', () => {
    const x = tf.variable(tf.zeros([2]));
    const c = chain(clipByGlobalNorm(1), sgd({ lr: 0.1, momentum: 0.9, weightDecay: 1e-4 }));
    const state = c.init({ x });
    expect(c.name).to.equal('chain');
    expect(Object.keys(state)).to.deep.equal(['clip', 'sgd']);
    expect(Object.keys(state.sgd)).to.deep.equal(['weightDecay', 'momentum', 'lr']);
    const velocity = (state.sgd.momentum as { velocity: Record<string, tf.Tensor> }).velocity.x;
    expect(velocity.shape).to.deep.equal([2]);
    expect(state.sgd.lr).to.deep.equal({ count: 0 });
    tf.dispose([x, ...stateTensors(state)]);
  });

  it('takes an optional name first', () => {
    expect(chain('optimizer', momentum({ momentum: 0.5 })).name).to.equal('optimizer');
  });

  it('conventional optimizers have conventional member names', () => {
    expect(names(sgd({ lr: 0.1 }))).to.deep.equal(['lr']);
    expect(names(sgd({ lr: 0.1, momentum: 0.9, weightDecay: 5e-4 }))).to.deep.equal(['weightDecay', 'momentum', 'lr']);
    expect(names(sgd({ lr: 0.1, momentum: 0.9, nesterov: true }))).to.deep.equal(['momentum', 'lr']);
    expect(names(adam({ lr: 1e-3 }))).to.deep.equal(['adam', 'lr']);
    expect(names(adam({ lr: 1e-3, weightDecay: 0.1 }))).to.deep.equal(['weightDecay', 'adam', 'lr']);
    expect(sgd({ lr: 0.1 }).name).to.equal('sgd');
  });

  it("tfjs-core's optimizers: member names and the hyperparams plugins read", () => {
    const hyper = (c: { transforms: readonly { name: string; hyperparams?: object }[] }) => c.transforms.map((t) => [t.name, t.hyperparams]);
    expect(hyper(rmsprop({ lr: 0.01, momentum: 0.5 }))).to.deep.equal([
      ['rms', { decay: 0.9, eps: 1e-7 }],
      ['momentum', { momentum: 0.5, dampening: 0, nesterov: false }],
      ['lr', { lr: 0.01 }],
    ]);
    expect(hyper(adagrad({ lr: 0.1 }))).to.deep.equal([['adagrad', { initialAccumulatorValue: 0.1, eps: 1e-7 }], ['lr', { lr: 0.1 }]]);
    expect(hyper(adadelta({ lr: 1, rho: 0.9 }))).to.deep.equal([['adadelta', { rho: 0.9, eps: 1e-7 }], ['lr', { lr: 1 }]]);
    expect(hyper(adamax({ lr: 0.002 }))).to.deep.equal([['adamax', { b1: 0.9, b2: 0.999, eps: 1e-7 }], ['lr', { lr: 0.002 }]]);
    expect(names(optimizerByName('momentum'))).to.deep.equal(['momentum', 'lr']);
    expect(optimizerByName('RMSProp').name).to.equal('rmsprop');
  });

  it('rejects duplicate names, naming them and their positions', () => {
    expect(() => chain(momentum({ momentum: 0.9 }), scaleByLearningRate(0.1), momentum({ momentum: 0.5 })))
      .to.throw("duplicate transform name(s) 'momentum' (members 0, 2)")
      .with.property('code', 'TAPFIT_E_CONFIG');
    // Renaming one fixes it.
    expect(() => chain(momentum({ momentum: 0.9 }), momentum({ momentum: 0.5, name: 'slow' }))).not.to.throw();
  });

  it('rejects members that are not transforms and names with a slash', () => {
    expect(() => chain({ lr: 0.1 } as unknown as StepTransform)).to.throw(/member 0 is not a StepTransform/);
    expect(() => chain(momentum({ momentum: 0.9, name: 'a/b' }))).to.throw(/must not contain '\/'/);
  });

  it('fails clearly when the state belongs to another chain', () => {
    const x = tf.variable(tf.zeros([2]));
    const c = sgd({ lr: 0.1, momentum: 0.9 });
    expect(() => tf.tidy(() => c.update({ x }, { lr: { count: 0 } }, { x }, { step: 0 })[0]))
      .to.throw(/chain 'sgd': the state has no entry for member 'momentum' \(it has: 'lr'\)/)
      .with.property('code', 'TAPFIT_E_STATE');
    x.dispose();
  });

  describe('find / replace / insert / remove by name', () => {
    const opt = () => chain(clipByGlobalNorm(1), sgd({ lr: 0.1, momentum: 0.9 }));

    it('finds by name or path through nested chains, undefined when absent', () => {
      const o = opt();
      const sgdChain = o.transforms[1] as Chain;
      expect(findTransform(o, 'momentum')).to.equal(sgdChain.transforms[0]);
      expect(findTransform(o, 'sgd/momentum')).to.equal(sgdChain.transforms[0]);
      expect(findTransform(o, 'sgd')).to.equal(sgdChain);
      expect(findTransform([...o.transforms], 'lr')).to.equal(sgdChain.transforms[1]);
      expect(findTransform(o, 'nope')).to.equal(undefined);
      expect(findTransform(o, 'clip/momentum')).to.equal(undefined);
    });

    it('replaces a nested member and returns a new chain; the original is unchanged', () => {
      const o = opt();
      const braking = momentum({ momentum: 0.5, name: 'braking' });
      const edited = replaceTransform(o, 'momentum', braking);
      expect(isChain(edited)).to.equal(true);
      expect(edited.name).to.equal('chain');
      expect(names(edited.transforms[1] as Chain)).to.deep.equal(['braking', 'lr']);
      expect(names(o.transforms[1] as Chain)).to.deep.equal(['momentum', 'lr']);
      expect(findTransform(edited, 'sgd/braking')).to.equal(braking);
    });

    it('the replaced optimizer steps with the replacement (what Adaptive Braking does)', () => {
      const edited = replaceTransform(sgd({ lr: 0.02, momentum: 0.9 }), 'momentum', momentum({ momentum: 0.5 }));
      const run = runTransform(edited, 50);
      expectTrajectoryClose(run.trajectory, referenceTrajectory(problem, refSgd({ lr: constant(0.02), momentum: 0.5 }), 50));
      run.dispose();
    });

    it('edits a list and returns a list', () => {
      const list = [clipByGlobalNorm(1), momentum({ momentum: 0.9 }), scaleByLearningRate(0.1)];
      const edited = replaceTransform(list, 'clip', clipByGlobalNorm(5, { name: 'clip5' }));
      expect(Array.isArray(edited)).to.equal(true);
      expect(edited.map((t) => t.name)).to.deep.equal(['clip5', 'momentum', 'lr']);
      expect(list.map((t) => t.name)).to.deep.equal(['clip', 'momentum', 'lr']);
    });

    it('inserts before or after a member, and removes one', () => {
      const o = opt();
      const wd = momentum({ momentum: 0.1, name: 'extra' });
      expect(names(insertTransform(o, wd, { before: 'momentum' }).transforms[1] as Chain)).to.deep.equal([
        'extra',
        'momentum',
        'lr',
      ]);
      expect(names(insertTransform(o, wd, { after: 'momentum' }).transforms[1] as Chain)).to.deep.equal([
        'momentum',
        'extra',
        'lr',
      ]);
      expect(names(insertTransform(o, wd, { after: 'sgd' }))).to.deep.equal(['clip', 'sgd', 'extra']);
      expect(names(removeTransform(o, 'clip'))).to.deep.equal(['sgd']);
    });

    it('errors: unknown name lists what exists; ambiguous name lists the paths; collisions are caught', () => {
      expect(() => replaceTransform(opt(), 'velocity', momentum({ momentum: 0.5 })))
        .to.throw("replaceTransform: no transform named 'velocity'; the transforms are 'clip', 'sgd', 'sgd/momentum', 'sgd/lr'.")
        .with.property('code', 'TAPFIT_E_CONFIG');
      const twoLrs = chain(sgd({ lr: 0.1 }), chain('other', scaleByLearningRate(1)));
      expect(() => findTransform(twoLrs, 'lr')).to.throw("'lr' matches several transforms: 'sgd/lr', 'other/lr'");
      expect(findTransform(twoLrs, 'other/lr')).to.equal((twoLrs.transforms[1] as Chain).transforms[0]);
      expect(() => replaceTransform(opt(), 'momentum', scaleByLearningRate(1))).to.throw(/duplicate transform name\(s\) 'lr'/);
    });
  });
});
