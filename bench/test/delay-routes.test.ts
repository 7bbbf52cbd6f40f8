import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { losses } from '@tapfit/core';
import { blobData, tinyModel } from '@tapfit/core/testing';
import { runDelayed, warmupCosine, type DelayRoute, type TrainingMethod } from '../src/lib/delay-training';

// The delay study trains AB through plugin-brakes and SC / LWP through plugin-pipeline;
// both must implement the same delay model (docs/techniques.md §4.3) with the same
// warm-up, or the comparison would not be fair.

const m = 0.9;
const run = { lr: 0.2, momentum: m, warmup: 5, updates: 30, batchSize: 4, seed: 3, checkEvery: 0 };

async function weightsAfter(method: TrainingMethod, delay: number, route: DelayRoute): Promise<{ w: Float32Array[]; batches: number; updates: number }> {
  const data = blobData(24, { seed: 5 });
  const model = tinyModel({ seed: 7 });
  const r = await runDelayed({ ...run, model, method, delay, data, momentumRoute: route });
  const w = model.getWeights().map((t) => t.dataSync() as Float32Array);
  r.dispose();
  model.dispose();
  data.dispose();
  return { w, batches: r.batches, updates: r.updates };
}

/**
 * The delay model written out: update k applies the gradient of batch k (the same batch
 * order as the trainer's: epoch e shuffled with permutation(seed, e)) computed on the
 * weights after update max(0, k - D), with momentum and the learning rate of update k.
 */
function reference(delay: number): Float32Array[] {
  const data = blobData(24, { seed: 5 });
  const model = tinyModel({ seed: 7 });
  const lr = warmupCosine(run.lr, run.warmup, run.updates);
  const history: tf.Tensor[][] = [model.getWeights().map((t) => tf.clone(t))];
  let v = history[0].map((t) => tf.zerosLike(t));
  let k = 0;
  for (let epoch = 0; k < run.updates; epoch++) {
    const it = data.batches({ batchSize: run.batchSize, shuffle: true, seed: run.seed, epoch }) as Iterator<{ x: tf.Tensor; y: tf.Tensor }>;
    for (let r = it.next(); !r.done && k < run.updates; r = it.next(), k++) {
      const { x, y } = r.value;
      model.setWeights(history[Math.max(0, k - delay)]);
      const { grads } = tf.variableGrads(() => losses.softmaxCrossEntropy(y, model.apply(x) as tf.Tensor) as tf.Scalar);
      const g = model.trainableWeights.map((w) => grads[(w.read() as tf.Variable).name]);
      const w = history[history.length - 1];
      const nextV = v.map((vi, i) => tf.add(tf.mul(vi, m), g[i]));
      history.push(w.map((wi, i) => tf.sub(wi, tf.mul(nextV[i], lr(k)))));
      tf.dispose([...v, ...Object.values(grads), x, y]);
      v = nextV;
    }
  }
  const out = history[history.length - 1].map((t) => t.dataSync() as Float32Array);
  tf.dispose([...history.flat(), ...v]);
  model.dispose();
  data.dispose();
  return out;
}

function maxDifference(a: Float32Array[], b: Float32Array[]): number {
  let d = 0;
  a.forEach((t, i) => t.forEach((x, j) => (d = Math.max(d, Math.abs(x - b[i][j])))));
  return d;
}

describe('delay study: plugin-brakes and plugin-pipeline implement the same delay model', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  for (const delay of [0, 1, 4]) {
    it(`momentum with D = ${delay}: both routes give the weights of the written-out delay model (same warm-up schedule)`, async () => {
      const ref = reference(delay);
      const viaBrakes = await weightsAfter({ kind: 'momentum' }, delay, 'brakes');
      const viaPipeline = await weightsAfter({ kind: 'momentum' }, delay, 'pipeline');
      expect(viaBrakes.updates).to.equal(run.updates);
      expect(viaPipeline.updates).to.equal(run.updates);
      // The brakes route fills its queue first: D more batches for the same updates.
      expect(viaBrakes.batches).to.equal(run.updates + delay);
      expect(viaPipeline.batches).to.equal(run.updates);
      expect(maxDifference(viaBrakes.w, ref)).to.be.below(1e-5);
      expect(maxDifference(viaPipeline.w, ref)).to.be.below(1e-5);
      expect(maxDifference(viaBrakes.w, viaPipeline.w)).to.be.below(1e-5);
    });
  }

  it('the comparison would catch a one-step shift in the delay', async () => {
    const ref = reference(4);
    const shifted = await weightsAfter({ kind: 'momentum' }, 3, 'brakes');
    expect(maxDifference(shifted.w, ref)).to.be.above(1e-3);
  });

  it('at D = 0, SC + LWP through the pipeline is plain momentum, bit for bit', async () => {
    const sc = await weightsAfter({ kind: 'sc+lwp' }, 0, 'pipeline');
    const plain = await weightsAfter({ kind: 'momentum' }, 0, 'brakes');
    expect(maxDifference(sc.w, plain.w)).to.equal(0);
  });

  it('SC, LWP and AB change the trajectory under delay (the study compares different methods)', async () => {
    const plain = await weightsAfter({ kind: 'momentum' }, 4, 'brakes');
    for (const method of [{ kind: 'sc' }, { kind: 'lwp' }, { kind: 'ab', rho: 1 }] as TrainingMethod[]) {
      expect(maxDifference((await weightsAfter(method, 4, 'brakes')).w, plain.w), method.kind).to.be.above(1e-4);
    }
  });

  it('leaves no tensors behind', async () => {
    await weightsAfter({ kind: 'momentum' }, 2, 'brakes'); // warm the kernels
    const before = tf.memory().numTensors;
    await weightsAfter({ kind: 'sc+lwp' }, 2, 'pipeline');
    await weightsAfter({ kind: 'ab', rho: 1 }, 2, 'brakes');
    expect(tf.memory().numTensors).to.equal(before);
  });
});
