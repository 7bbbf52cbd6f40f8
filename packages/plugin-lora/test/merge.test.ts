import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { applyLora, LoraModel, type LoraLayer } from '../src';
import { cnn, embedder, maxAbsDiff, mlp, perturbAdapters, sameValues, thrown, useCpu } from './helpers';

/** |y_m - y_u| <= 1e-5 (1 + |y_u|) elementwise (docs/techniques.md §1.6 item 2). */
function agree(merged: tf.Tensor, unmerged: tf.Tensor): boolean {
  return tf.tidy(() => tf.all(tf.lessEqual(tf.abs(tf.sub(merged, unmerged)), tf.mul(1e-5, tf.add(1, tf.abs(unmerged))))).dataSync()[0] === 1);
}

const kernels = (lora: LoraModel) => lora.layers.map((l) => tf.clone(l.kernel.read()));

async function roundTrip(model: tf.LayersModel): Promise<tf.LayersModel> {
  let saved: tf.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => ((saved = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
  return tf.loadLayersModel(tf.io.fromMemory(saved!));
}

describe('merge / unmerge / unload', () => {
  useCpu();

  const models: [string, () => tf.LayersModel, () => tf.Tensor, string[] | string][] = [
    ['MLP', () => mlp(), () => tf.randomNormal([6, 6], 0, 1, 'float32', 1), 'all-dense'],
    ['CNN', () => cnn(), () => tf.randomNormal([3, 7, 7, 4], 0, 1, 'float32', 2), ['all-conv2d', 'all-dense']],
    ['Embedding', () => embedder(), () => tf.tensor2d([[1, 2, 3, 4], [9, 0, 19, 2]]), ['emb', 'head']],
  ];
  for (const [name, make, input, targets] of models) {
    it(`${name}: merged and unmerged outputs agree within 1e-5 (1 + |y|); merged runs the base computation`, () => {
      const base = make();
      const lora = applyLora(base, { targets, rank: 2, seed: 3 });
      perturbAdapters(lora.model, 5, 0.5);
      const x = input();
      const yu = lora.model.predict(x) as tf.Tensor;
      expect(maxAbsDiff(yu, base.predict(x) as tf.Tensor)).to.be.above(1e-3); // the adapter matters
      lora.merge();
      expect(lora.isMerged).to.equal(true);
      const ym = lora.model.predict(x) as tf.Tensor;
      expect(agree(ym, yu)).to.equal(true);
      // Merged = the plain model with the folded kernels, op for op.
      const plain = lora.unload();
      tf.tidy(() => {
        expect(sameValues(plain.predict(x) as tf.Tensor, ym)).to.equal(true);
      });
      tf.dispose([x, yu, ym]);
      plain.dispose();
      lora.dispose();
      base.dispose();
    });
  }

  it('merge then unmerge restores the kernels bit for bit', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'all-dense', rank: 3, seed: 1 });
    perturbAdapters(lora.model, 2, 1);
    const before = kernels(lora);
    lora.merge();
    lora.layers.forEach((l, i) => expect(maxAbsDiff(l.kernel.read(), before[i])).to.be.above(1e-3));
    lora.unmerge();
    expect(lora.isMerged).to.equal(false);
    lora.layers.forEach((l, i) => expect(sameValues(l.kernel.read(), before[i])).to.equal(true));
    tf.dispose(before);
    lora.dispose();
    base.dispose();
  });

  it('merging twice and unmerging an unmerged model are errors that change nothing', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'all-dense', rank: 2, seed: 1 });
    perturbAdapters(lora.model);
    expect(thrown(() => lora.unmerge()).message).to.match(/unmerge: adapter 'default' is not merged/);
    lora.merge();
    const merged = kernels(lora);
    expect(thrown(() => lora.merge()).message).to.match(/merge: adapter 'default' is already merged .*Call unmerge\(\) first/);
    lora.layers.forEach((l, i) => expect(sameValues(l.kernel.read(), merged[i])).to.equal(true));
    tf.dispose(merged);
    lora.dispose();
    base.dispose();
  });

  it('a merge that would produce non-finite kernels fails without touching any layer', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'all-dense', rank: 2, seed: 1 });
    perturbAdapters(lora.model);
    const last = lora.layers[2].adapterWeights('default').B;
    const bad = tf.fill(last.shape as number[], NaN);
    last.write(bad);
    bad.dispose();
    const before = kernels(lora);
    expect(thrown(() => lora.merge()).message).to.match(/not finite in layers head.*Nothing was changed/);
    expect(lora.isMerged).to.equal(false);
    lora.layers.forEach((l, i) => expect(sameValues(l.kernel.read(), before[i])).to.equal(true));
    tf.dispose(before);
    lora.dispose();
    base.dispose();
  });

  it('merge and unmerge do not leak tensors', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'all-dense', rank: 2, seed: 1 });
    lora.merge().unmerge();
    const n = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) lora.merge().unmerge();
    expect(tf.memory().numTensors).to.equal(n);
    lora.dispose();
    base.dispose();
  });

  it('unload returns a plain Dense/Conv2D model that model.save round-trips', async () => {
    const base = cnn();
    const lora = applyLora(base, { targets: ['all-conv2d', 'head'], rank: 2, seed: 1 });
    perturbAdapters(lora.model);
    const plain = lora.unload();
    expect(plain.layers.map((l) => l.getClassName())).to.deep.equal(['Conv2D', 'Conv2D', 'Flatten', 'Dense']);
    expect(plain.layers.every((l) => l.trainable)).to.equal(true);
    expect(lora.isMerged).to.equal(false); // unload leaves the LoRA model as it was
    const again = await roundTrip(plain);
    expect(again.layers.map((l) => l.getClassName())).to.deep.equal(['Conv2D', 'Conv2D', 'Flatten', 'Dense']);
    const x = tf.randomNormal([2, 7, 7, 4], 0, 1, 'float32', 9);
    tf.tidy(() => {
      const yu = lora.model.predict(x) as tf.Tensor;
      expect(agree(again.predict(x) as tf.Tensor, yu)).to.equal(true);
      expect(sameValues(again.predict(x) as tf.Tensor, plain.predict(x) as tf.Tensor)).to.equal(true);
    });
    // Unloading a merged model gives the same kernels.
    lora.merge();
    const plain2 = lora.unload();
    plain2.layers.forEach((l, i) => l.weights.forEach((w, j) => expect(maxAbsDiff(w.read(), plain.layers[i].weights[j].read())).to.be.below(1e-6)));
    tf.dispose(x);
    [again, plain, plain2, lora, base].forEach((m) => ('dispose' in m ? m.dispose() : null));
  });

  it('a merged LoRA model survives model.save and unmerges after loading', async () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'all-linear', rank: 2, seed: 1 });
    perturbAdapters(lora.model);
    const x = tf.randomNormal([4, 6], 0, 1, 'float32', 3);
    const yu = lora.model.predict(x) as tf.Tensor;
    lora.merge();
    const again = LoraModel.from(await roundTrip(lora.model));
    expect(again.isMerged).to.equal(true);
    again.unmerge();
    tf.tidy(() => {
      expect(agree(again.model.predict(x) as tf.Tensor, yu)).to.equal(true);
    });
    tf.dispose([x, yu]);
    again.dispose();
    lora.dispose();
    base.dispose();
  });

  describe('several adapters on one base', () => {
    it('switch with setActiveAdapter; only the active one trains; merge uses the active one', () => {
      const base = mlp();
      const lora = applyLora(base, { targets: 'all-linear', rank: 2, seed: 1, adapterName: 'a' });
      expect(lora.addAdapter('b', { rank: 4, seed: 9, targets: 'fc2' })).to.deep.equal(['fc2']);
      expect(lora.adapters).to.deep.equal(['a', 'b']);
      perturbAdapters(lora.model, 1, 0.5); // perturbs the trainable (active = a) B's
      lora.setActiveAdapter('b');
      perturbAdapters(lora.model, 2, 0.5);
      expect(lora.model.trainableWeights.map((w) => w.originalName)).to.deep.equal(['fc2/lora_A.b', 'fc2/lora_B.b']);
      expect(lora.trainableParams).to.equal(4 * (12 + 10));
      const x = tf.randomNormal([3, 6], 0, 1, 'float32', 4);
      const yb = lora.model.predict(x) as tf.Tensor;
      lora.setActiveAdapter('a');
      const ya = lora.model.predict(x) as tf.Tensor;
      lora.setActiveAdapter(null);
      const y0 = lora.model.predict(x) as tf.Tensor;
      expect(lora.model.trainableWeights).to.have.length(0);
      expect(sameValues(y0, base.predict(x) as tf.Tensor)).to.equal(true);
      expect(maxAbsDiff(ya, yb)).to.be.above(1e-3);
      expect(maxAbsDiff(ya, y0)).to.be.above(1e-3);
      // fc1 has no adapter 'b': with b active it runs its base kernel.
      lora.setActiveAdapter('b');
      expect(lora.layers.map((l: LoraLayer) => l.activeAdapter)).to.deep.equal([null, 'b']);
      lora.merge();
      expect(thrown(() => lora.setActiveAdapter('a')).message).to.match(/adapter 'b' is merged; call unmerge\(\) first/);
      tf.tidy(() => {
        expect(agree(lora.model.predict(x) as tf.Tensor, yb)).to.equal(true);
      });
      lora.unmerge().setActiveAdapter('a'); // fc2's kernel went through a merge/unmerge round trip: equal up to rounding
      tf.tidy(() => {
        expect(agree(lora.model.predict(x) as tf.Tensor, ya)).to.equal(true);
      });
      expect(thrown(() => lora.setActiveAdapter('zzz')).message).to.match(/no adapter named 'zzz' \(adapters: a, b\)/);
      expect(thrown(() => lora.addAdapter('c', { rank: 2, targets: 'head' })).message).to.match(/matches no LoRA layer/);
      expect(thrown(() => lora.addAdapter('a', { rank: 2 })).message).to.match(/already has an adapter 'a'/);
      tf.dispose([x, yb, ya, y0]);
      lora.dispose();
      base.dispose();
    });

    it('frozen and inactive weights stay frozen when tfjs resets trainable flags, for raw tf.variableGrads too', () => {
      const base = mlp();
      const lora = applyLora(base, { targets: 'all-linear', rank: 2, adapterName: 'a' });
      lora.addAdapter('b', { rank: 2 });
      const x = tf.randomNormal([4, 6], 0, 1, 'float32', 1);
      // No var list: tf differentiates every variable whose own flag is set, whatever its layer says.
      const rawGrads = () => {
        const { value, grads } = tf.variableGrads(() => tf.sum(lora.model.apply(x) as tf.Tensor) as tf.Scalar);
        const names = Object.keys(grads).map((n) => n.replace(/_\d+$/, ''));
        tf.dispose([value, ...Object.values(grads)]);
        return names;
      };
      const adapterA = ['fc1/lora_A.a', 'fc1/lora_B.a', 'fc2/lora_A.a', 'fc2/lora_B.a'];
      lora.model.trainable = true; // tfjs' container setter turns on every registered flag, the frozen head's included
      expect(lora.model.trainableWeights.map((w) => w.originalName)).to.deep.equal(adapterA);
      expect(rawGrads()).to.have.members(adapterA).and.have.length(4);
      lora.model.trainable = false; // a frozen model trains nothing, adapters included
      expect(lora.model.weights.filter((w) => w.trainable)).to.deep.equal([]);
      lora.model.trainable = true;
      expect(rawGrads()).to.have.members(adapterA).and.have.length(4);
      lora.setActiveAdapter('b');
      lora.model.trainable = true;
      expect(rawGrads()).to.have.members(['fc1/lora_A.b', 'fc1/lora_B.b', 'fc2/lora_A.b', 'fc2/lora_B.b']).and.have.length(4);
      x.dispose();
      lora.dispose();
      base.dispose();
    });

    it('a reloaded LoRA model (LoraModel.from) keeps its base frozen under model.trainable = true', async () => {
      const base = mlp();
      const lora = applyLora(base, { targets: 'fc1', rank: 2, modulesToSave: 'head' });
      const again = LoraModel.from(await roundTrip(lora.model));
      again.model.trainable = true;
      expect(again.model.weights.filter((w) => w.trainable).map((w) => w.originalName.replace(/_\d+\//, '/'))).to.have.members(['fc1/lora_A.default', 'fc1/lora_B.default', 'head/kernel', 'head/bias']);
      [again, lora, base].forEach((m) => m.dispose());
    });
  });
});
