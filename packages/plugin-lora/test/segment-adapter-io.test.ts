import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { forwardSegments, modelVariables } from '@tapfit/core';
import { applyLora, applyLoraToSegments, LoraModel, LoraSegmentModel } from '../src';
import { mlp, perturbAdapters, rejected, sameValues, useCpu } from './helpers';
import { denseSegments, disposeModel, evalCtx } from './segment-helpers';

describe('segment adapter save and load', () => {
  useCpu();
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-lora-seg-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  function trained(seed = 1) {
    const base = denseSegments(seed);
    const lora = applyLoraToSegments(base, { targets: 'fc1', rank: 2, alpha: 3, seed: 5, modulesToSave: 'head/param0' });
    let s = 11;
    for (const v of [lora.adapters[0].A, lora.adapters[0].B, lora.saved[0].variable]) {
      const t = tf.randomNormal(v.shape, 0, 0.5, 'float32', s++);
      v.assign(t);
      t.dispose();
    }
    return { base, lora };
  }

  it('round trip: a fresh base plus the adapter reproduces the outputs exactly', async () => {
    const { base, lora } = trained();
    const file = await lora.saveAdapter(dir);
    expect(fs.readdirSync(dir).sort()).to.deep.equal(['adapter_config.json', 'adapter_weights.bin']);
    expect(file).to.include({ format: 'tapfit-lora-adapter', version: 1, modelKind: 'segments', adapter: 'default' });
    expect(file.targets).to.deep.equal(['fc1/param0']);
    expect(file.modulesToSave).to.deep.equal(['head/param0']);
    expect(file.weights.map((w) => w.name)).to.deep.equal(['fc1/param0/lora_A', 'fc1/param0/lora_B', 'head/param0']);
    expect(file.weightsBytes).to.equal(4 * (2 * (4 + 6) + 6 * 3)); // adapters plus the saved head weight, not the base

    const base2 = denseSegments(1); // same seeds: the same base weights, other variables
    const loaded = await LoraSegmentModel.load(base2, dir);
    expect(loaded.spec).to.deep.equal(file.spec);
    expect(modelVariables(base2).map((v) => v.trainable)).to.deep.equal([false, false, true, false]);
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 2);
    tf.tidy(() => {
      expect(sameValues(forwardSegments(loaded.model, x, evalCtx), forwardSegments(lora.model, x, evalCtx))).to.equal(true);
    });
    tf.dispose(x);
    loaded.dispose();
    lora.dispose();
    [base, base2].forEach(disposeModel);
  });

  it('refuses, changing nothing, another base, other targets, a merged LoRA and the other kind of adapter', async () => {
    const { base, lora } = trained();
    await lora.saveAdapter(path.join(dir, 'seg'));

    const otherBase = denseSegments(2); // same shapes, other weights
    const tensors = tf.memory().numTensors;
    const err = await rejected(LoraSegmentModel.load(otherBase, path.join(dir, 'seg')));
    expect(err.message).to.match(/cannot load .* the base weights differ: 'fc1\/param0' differs by up to/);
    expect(modelVariables(otherBase).every((v) => v.trainable)).to.equal(true); // the failed load was undone
    expect(tf.memory().numTensors).to.equal(tensors);

    const base3 = denseSegments(1);
    const wider = applyLoraToSegments(base3, { targets: 'all-dense', rank: 2, alpha: 3, seed: 5 });
    const A = tf.clone(wider.adapters[0].A);
    expect((await rejected(wider.loadAdapter(path.join(dir, 'seg')))).message).to.match(/was saved with targets \[fc1\/param0\].*this LoRA has \[fc1\/param0, head\/param0\].*LoraSegmentModel\.load/);
    expect(sameValues(wider.adapters[0].A, A)).to.equal(true);
    wider.dispose();

    lora.merge();
    expect((await rejected(lora.saveAdapter(path.join(dir, 'x')))).message).to.match(/merged.*call unmerge\(\) first/);
    lora.unmerge();

    // A layers adapter is refused by the segment loader, and the other way round.
    const layers = mlp();
    const layersLora = applyLora(layers, { targets: 'fc1', rank: 2, seed: 1 });
    perturbAdapters(layersLora.model);
    await layersLora.saveAdapter(path.join(dir, 'layers'));
    expect((await rejected(LoraSegmentModel.load(base3, path.join(dir, 'layers')))).message).to.match(/holds an adapter saved from a tfjs-layers model; load it with LoraModel\.load/);
    expect((await rejected(LoraModel.load(layers, path.join(dir, 'seg')))).message).to.match(/holds an adapter saved from a segment model; load it with LoraSegmentModel\.load/);
    expect((await rejected(layersLora.loadAdapter(path.join(dir, 'seg')))).message).to.match(/holds an adapter saved from a segment model/);

    tf.dispose(A);
    [layersLora, layers].forEach((m) => m.dispose());
    lora.dispose();
    [base, otherBase, base3].forEach(disposeModel);
  });

  it('compares every base variable, biases and untargeted ones too, except modulesToSave and never-trainable statistics', async () => {
    const { base, lora } = trained(); // targets fc1/param0; head/param0 is saved in full
    const file = await lora.saveAdapter(dir);
    expect(Object.keys(file.base.samples)).to.deep.equal(['fc1/param0', 'fc1/param1', 'head/param1']);
    const shifted = (index: number) => {
      const b = denseSegments(1);
      const v = modelVariables(b)[index];
      v.assign(tf.tidy(() => tf.add(v, 0.5)));
      return b;
    };
    for (const [index, name] of [[1, 'fc1/param1'], [3, 'head/param1']] as const) {
      const other = shifted(index);
      const err = await rejected(LoraSegmentModel.load(other, dir));
      expect(err.message).to.match(new RegExp(`the base weights differ: '${name}' differs by up to`));
      expect(modelVariables(other).every((v) => v.trainable)).to.equal(true);
      disposeModel(other);
    }
    const otherSaved = shifted(2); // head/param0: stored in the file
    const loaded = await LoraSegmentModel.load(otherSaved, dir);
    loaded.dispose();
    disposeModel(otherSaved);
    // A variable that was never trainable (a running statistic) may drift.
    const statistic = denseSegments(1);
    modelVariables(statistic)[3].trainable = false;
    const frozen = applyLoraToSegments(statistic, { targets: 'fc1', rank: 2, seed: 5 });
    const statsFile = await frozen.saveAdapter(path.join(dir, 'stats'));
    expect(Object.keys(statsFile.base.samples)).to.deep.equal(['fc1/param0', 'fc1/param1', 'head/param0']);
    frozen.dispose();
    disposeModel(statistic);
    lora.dispose();
    disposeModel(base);
  });

  it('stores the never-trainable statistics training moved and restores them, so the loaded model predicts as the trained one', async () => {
    const withStatistic = () => {
      const m = denseSegments(1);
      modelVariables(m)[3].trainable = false; // head/param1 plays a running statistic
      return m;
    };
    const base = withStatistic();
    const lora = applyLoraToSegments(base, { targets: 'fc1', rank: 2, seed: 5 });
    const B = tf.randomNormal(lora.adapters[0].B.shape, 0, 0.5, 'float32', 3);
    lora.adapters[0].B.assign(B);
    const statistic = modelVariables(base)[3];
    const moved = tf.tidy(() => tf.add(statistic, 0.5)); // what training would do
    statistic.assign(moved);
    const file = await lora.saveAdapter(dir);
    expect(file.statistics).to.deep.equal(['head/param1']);

    const fresh = withStatistic();
    const loaded = await LoraSegmentModel.load(fresh, dir);
    expect(sameValues(modelVariables(fresh)[3], moved)).to.equal(true);
    const x = tf.randomNormal([5, 4], 0, 1, 'float32', 2);
    tf.tidy(() => {
      expect(sameValues(forwardSegments(loaded.model, x, evalCtx), forwardSegments(lora.model, x, evalCtx))).to.equal(true);
    });
    tf.dispose([x, B, moved]);
    loaded.dispose();
    lora.dispose();
    [base, fresh].forEach(disposeModel);
  });
});
