import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { ErrorCodes, TapfitError } from '@tapfit/core';
import { applyLora, LoraConv2D, LoraDense, type LoraLayer, type LoraLayerConfig, resolveSpec, scaleOf } from '../src';
import { array2d, cnn, embedder, functional, maxAbsDiff, mlp, perturbAdapters, sameValues, thrown, useCpu } from './helpers';
import { loraDense, loraDenseGrads, maxAbs } from './reference';

describe('LoRA layers', () => {
  useCpu();

  describe('zero-initialised update (B = 0; A = 0 for Embedding): the wrapped model equals the base', () => {
    const cases: [string, () => tf.LayersModel, () => tf.Tensor, string | string[]][] = [
      ['Dense (sequential)', () => mlp(), () => tf.randomNormal([5, 6], 0, 1, 'float32', 11), 'all-dense'],
      ['Conv2D', () => cnn(), () => tf.randomNormal([2, 7, 7, 4], 0, 1, 'float32', 12), ['all-conv2d', 'head']],
      ['functional graph', () => functional(), () => tf.randomNormal([4, 5], 0, 1, 'float32', 13), 'all-dense'],
      ['Embedding', () => embedder(), () => tf.tensor2d([[1, 2, 3, 19], [0, 5, 5, 7]]), ['emb', 'head']],
    ];
    for (const [name, make, input, targets] of cases) {
      it(`${name}: bit-for-bit in eval and train mode, with adapter dropout on`, () => {
        const base = make();
        const lora = applyLora(base, { targets, rank: 2, dropout: 0.5, seed: 3 });
        const x = input();
        tf.tidy(() => {
          const y0 = base.predict(x) as tf.Tensor;
          expect(sameValues(y0, lora.model.predict(x) as tf.Tensor)).to.equal(true);
          // Train mode: adapter dropout is active, but B = 0 makes the mask irrelevant.
          // (The functional model's own Dropout layer is seeded per call, so compare it in eval only.)
          if (name !== 'functional graph') {
            const yb = base.apply(x, { training: true }) as tf.Tensor;
            for (let i = 0; i < 3; i++) expect(sameValues(yb, lora.model.apply(x, { training: true }) as tf.Tensor)).to.equal(true);
          }
        });
        x.dispose();
        lora.dispose();
        base.dispose();
      });
    }
  });

  it('forward equals the float64 reference y = act(xK + b + s (xA) B) once B is non-zero', () => {
    const base = tf.sequential({ layers: [tf.layers.dense({ units: 7, inputShape: [5], name: 'fc', biasInitializer: tf.initializers.randomNormal({ seed: 5 }) })] });
    const lora = applyLora(base, { targets: 'fc', rank: 3, alpha: 5, seed: 1 });
    perturbAdapters(lora.model);
    const layer = lora.layers[0];
    const { A, B } = layer.adapterWeights('default');
    const x = tf.randomNormal([4, 5], 0, 1, 'float32', 2);
    const want = loraDense(array2d(x), array2d(layer.kernel.read()), Array.from(layer.bias!.read().dataSync()), array2d(A.read()), array2d(B.read()), 5 / 3);
    const got = lora.model.predict(x) as tf.Tensor;
    expect(maxAbs(array2d(got), want)).to.be.below(1e-5);
    tf.dispose([x, got]);
    lora.dispose();
    base.dispose();
  });

  it('gradients reach only A and B, and match the analytic float64 gradients', () => {
    const base = tf.sequential({ layers: [tf.layers.dense({ units: 4, inputShape: [6], name: 'fc' }), tf.layers.dense({ units: 3, name: 'head' })] });
    const lora = applyLora(base, { targets: 'fc', rank: 2, alpha: 3, seed: 4 });
    perturbAdapters(lora.model);
    const layer = lora.layers[0];
    const { A, B } = layer.adapterWeights('default');
    const x = tf.randomNormal([5, 6], 0, 1, 'float32', 8);
    const G = tf.randomNormal([5, 4], 0, 1, 'float32', 9);
    // No var list: tf takes every trainable variable of the engine, so this also checks
    // that the base kernel, the bias and the frozen head are not trainable.
    const v = (w: tf.LayerVariable) => w.read() as tf.Variable;
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(lora.model.layers[0].apply(x) as tf.Tensor, G)) as tf.Scalar);
    expect(Object.keys(grads).sort()).to.deep.equal([v(A).name, v(B).name].sort());
    expect(v(layer.kernel).trainable).to.equal(false);
    expect(v(layer.bias!).trainable).to.equal(false);
    const ref = loraDenseGrads(array2d(x), array2d(A.read()), array2d(B.read()), array2d(G), 3 / 2);
    expect(maxAbs(array2d(grads[v(A).name]), ref.dA)).to.be.below(1e-5);
    expect(maxAbs(array2d(grads[v(B).name]), ref.dB)).to.be.below(1e-5);
    tf.dispose([x, G, value, ...Object.values(grads)]);
    lora.dispose();
    base.dispose();
  });

  it('trainable parameters per module are exactly r * (fan-in + fan-out)', () => {
    for (const [make, targets, fans] of [
      [mlp, 'all-dense', [[6, 12], [12, 10], [10, 3]]],
      [cnn, 'all-conv2d', [[3 * 3 * 4, 6], [3 * 2 * 6, 5]]],
      [embedder, 'emb', [[20, 6]]],
    ] as [() => tf.LayersModel, string, number[][]][]) {
      const base = make();
      const r = 2;
      const lora = applyLora(base, { targets, rank: r });
      lora.layers.forEach((l, i) => {
        const n = l.trainableWeights.reduce((a, w) => a + w.shape.reduce((x: number, y) => x * (y as number), 1), 0);
        expect(n).to.equal(r * (fans[i][0] + fans[i][1]));
      });
      expect(lora.trainableParams).to.equal(fans.reduce((a, [i, o]) => a + r * (i + o), 0));
      expect(lora.plan!.adapted.map((p) => p.adapterParams)).to.deep.equal(fans.map(([i, o]) => r * (i + o)));
      lora.dispose();
      base.dispose();
    }
  });

  it('scale is alpha/r, alpha/sqrt(r) with rsLora, and 2 for alpha = 2r at every rank', () => {
    expect(scaleOf(resolveSpec({ rank: 8, alpha: 4 }))).to.equal(0.5);
    expect(scaleOf(resolveSpec({ rank: 16, alpha: 8, rsLora: true }))).to.equal(2);
    for (const r of [1, 4, 16, 64, 256]) expect(scaleOf(resolveSpec({ rank: r }))).to.equal(2); // default alpha = 2r
    // And the layer really applies it: delta = s * A B.
    const base = mlp();
    for (const rsLora of [false, true]) {
      const lora = applyLora(base, { targets: 'fc1', rank: 4, alpha: 3, rsLora, seed: 2 });
      perturbAdapters(lora.model);
      const l = lora.layers[0];
      const { A, B } = l.adapterWeights('default');
      const s = rsLora ? 3 / 2 : 3 / 4;
      tf.tidy(() => {
        expect(maxAbsDiff(l.deltaKernel('default'), tf.mul(tf.matMul(A.read(), B.read()), s))).to.be.below(1e-6);
      });
      lora.dispose();
    }
    base.dispose();
  });

  it('kaiming init draws A from U(-1/sqrt(fan-in), 1/sqrt(fan-in)); gaussian from N(0, 1/r^2); B starts at 0', () => {
    const base = tf.sequential({ layers: [tf.layers.dense({ units: 64, inputShape: [400], name: 'fc' })] });
    const k = applyLora(base, { targets: 'fc', rank: 32, seed: 1 });
    const g = applyLora(base, { targets: 'fc', rank: 32, init: 'gaussian', seed: 1 });
    const a = Array.from(k.layers[0].adapterWeights('default').A.read().dataSync());
    const bound = 1 / Math.sqrt(400);
    expect(Math.max(...a)).to.be.at.most(bound);
    expect(Math.min(...a)).to.be.at.least(-bound);
    const variance = a.reduce((s, v) => s + v * v, 0) / a.length;
    expect(variance).to.be.closeTo((bound * bound) / 3, 0.05 * (bound * bound) / 3); // var of U(-b, b)
    const ga = Array.from(g.layers[0].adapterWeights('default').A.read().dataSync());
    const gstd = Math.sqrt(ga.reduce((s, v) => s + v * v, 0) / ga.length);
    expect(gstd).to.be.closeTo(1 / 32, 0.05 / 32 + 0.002);
    for (const m of [k, g]) expect(Array.from(m.layers[0].adapterWeights('default').B.read().dataSync()).every((v) => v === 0)).to.equal(true);
    k.dispose();
    g.dispose();
    base.dispose();
  });

  it("Embedding adapters start as PEFT's: A = 0, B ~ N(0, 1) (seeded, whatever init); the output equals the base", () => {
    const vocab = 500;
    const base = tf.sequential({ layers: [tf.layers.embedding({ inputDim: vocab, outputDim: 64, inputLength: 4, name: 'emb', embeddingsInitializer: tf.initializers.randomNormal({ seed: 1 }) })] });
    const ids = tf.tensor2d([[1, 2, 3, 499], [0, 5, 5, 7]]);
    const Bs: Float32Array[] = [];
    for (const init of ['kaiming', 'gaussian'] as const) {
      const lora = applyLora(base, { targets: 'emb', rank: 8, init, seed: 3 });
      const { A, B } = lora.layers[0].adapterWeights('default');
      expect(A.shape).to.deep.equal([vocab, 8]);
      expect(Array.from(A.read().dataSync()).every((v) => v === 0)).to.equal(true);
      const b = B.read().dataSync() as Float32Array;
      const mean = b.reduce((s, v) => s + v, 0) / b.length;
      const std = Math.sqrt(b.reduce((s, v) => s + (v - mean) ** 2, 0) / b.length);
      expect(std).to.be.within(0.9, 1.1); // 512 draws of N(0, 1)
      expect(Math.abs(mean)).to.be.below(0.15);
      Bs.push(b.slice());
      tf.tidy(() => {
        expect(sameValues(lora.model.predict(ids) as tf.Tensor, base.predict(ids) as tf.Tensor)).to.equal(true); // B A = 0
        // So the first step moves A (dA = s G B^T on the looked-up rows), not B (dB = s (x A)^T G = 0), as in PEFT.
        const { grads } = tf.variableGrads(() => tf.sum(tf.mul(lora.model.apply(ids, { training: true }) as tf.Tensor, 1)) as tf.Scalar);
        const norm = (w: tf.LayerVariable) => tf.norm(grads[(w.read() as tf.Variable).name]).dataSync()[0];
        expect(norm(A)).to.be.above(1);
        expect(norm(B)).to.equal(0);
      });
      lora.dispose();
    }
    expect(Array.from(Bs[0])).to.deep.equal(Array.from(Bs[1])); // seeded: the same draw
    ids.dispose();
    base.dispose();
  });

  it('adapter dropout: with B = 0 the mask cannot matter; with B != 0 it does in train mode only', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'fc1', rank: 3, dropout: 0.5, seed: 1 });
    const x = tf.randomNormal([8, 6], 0, 1, 'float32', 3);
    tf.tidy(() => {
      const ref = base.apply(x, { training: true }) as tf.Tensor;
      for (let i = 0; i < 4; i++) expect(sameValues(ref, lora.model.apply(x, { training: true }) as tf.Tensor)).to.equal(true);
    });
    perturbAdapters(lora.model, 3, 1);
    tf.tidy(() => {
      const t1 = lora.model.apply(x, { training: true }) as tf.Tensor;
      const t2 = lora.model.apply(x, { training: true }) as tf.Tensor;
      expect(maxAbsDiff(t1, t2)).to.be.above(1e-4);
      expect(sameValues(lora.model.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    x.dispose();
    lora.dispose();
    base.dispose();
  });

  it('does not leak tensors over repeated forward and backward passes', () => {
    const base = cnn();
    const lora = applyLora(base, { targets: ['all-conv2d', 'head'], rank: 2, dropout: 0.1, seed: 1 });
    const x = tf.randomNormal([2, 7, 7, 4], 0, 1, 'float32', 1);
    const step = () => {
      const { value, grads } = tf.variableGrads(() => tf.mean(tf.square(lora.model.apply(x, { training: true }) as tf.Tensor)) as tf.Scalar);
      tf.dispose([value, ...Object.values(grads)]);
      tf.tidy(() => {
        lora.model.predict(x);
      });
    };
    step();
    const before = tf.memory().numTensors;
    for (let i = 0; i < 5; i++) step();
    expect(tf.memory().numTensors).to.equal(before);
    x.dispose();
    lora.dispose();
    base.dispose();
  });

  it('serialises with the model: a saved LoRA model reloads with its adapters, outputs and trainable set', async () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'all-linear', rank: 2, seed: 1 });
    perturbAdapters(lora.model);
    let saved: tf.io.ModelArtifacts | undefined;
    await lora.model.save(tf.io.withSaveHandler(async (a) => ((saved = a), { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } })));
    const again = await tf.loadLayersModel(tf.io.fromMemory(saved!));
    expect(again.layers.map((l) => l.getClassName())).to.deep.equal(['LoraDense', 'LoraDense', 'Dense']);
    expect(again.layers[0]).to.be.instanceOf(LoraDense);
    const x = tf.randomNormal([3, 6], 0, 1, 'float32', 4);
    tf.tidy(() => {
      expect(sameValues(again.predict(x) as tf.Tensor, lora.model.predict(x) as tf.Tensor)).to.equal(true);
    });
    expect(again.trainableWeights.map((w) => w.originalName)).to.deep.equal(lora.model.trainableWeights.map((w) => w.originalName));
    x.dispose();
    again.dispose();
    lora.dispose();
    base.dispose();
  });

  it('refuses to train a merged layer', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'fc1', rank: 2 }).merge();
    const x = tf.zeros([1, 6]);
    expect(() => lora.model.apply(x, { training: true })).to.throw(/merged.*unmerge\(\) before training/);
    x.dispose();
    lora.dispose();
    base.dispose();
  });

  it('a config or input shape a LoRA layer cannot take is a TapfitError naming the layer and the fix', () => {
    const lora = { adapters: { default: resolveSpec({ rank: 1 }) }, active: 'default', merged: false, seed: 1 };
    const config = (c: object) => ({ ...c, lora }) as unknown as LoraLayerConfig;
    const expectError = (err: Error, code: string, message: RegExp) => {
      expect(err).to.be.instanceOf(TapfitError);
      expect((err as TapfitError).code).to.equal(code);
      expect(err.message).to.match(message);
    };
    expectError(
      thrown(() => new LoraConv2D(config({ name: 'c1', filters: 2, kernelSize: 3, dataFormat: 'channelsFirst' }))),
      ErrorCodes.CONFIG,
      /^lora: LoraConv2D 'c1': dataFormat 'channelsFirst' is not supported; .*Exclude the layer from 'targets'/,
    );
    expectError(thrown(() => new LoraConv2D(config({ name: 'c2', filters: 2, kernelSize: [3, 3, 3] }))), ErrorCodes.CONFIG, /LoraConv2D 'c2': config 'kernelSize' must be an integer or a pair of integers \(got \[3,3,3\]\)/);
    expectError(thrown(() => new LoraConv2D(config({ name: 'c3', filters: 2, kernelSize: 3, padding: 'causal' }))), ErrorCodes.CONFIG, /LoraConv2D 'c3': padding 'causal' is not supported/);
    const dense = new LoraDense(config({ name: 'd1', units: 3 }));
    expectError(thrown(() => dense.build([null, null])), ErrorCodes.SHAPE, /LoraDense 'd1': the last dimension of input shape \[null,null\] is unknown; give the model an input shape/);
    const base = mlp();
    expectError(thrown(() => applyLora(base, { targets: ['fc1', 7 as unknown as string], rank: 2 })), ErrorCodes.CONFIG, /^lora: option 'targets': a selector must be a layer name, .*\(got 7\)/);
    base.dispose();
  });

  it('exposes its state through the layer API', () => {
    const base = mlp();
    const lora = applyLora(base, { targets: 'fc2', rank: 2, adapterName: 'task' });
    const l: LoraLayer = lora.layers[0];
    expect([l.baseClassName, l.activeAdapter, l.isMerged, l.fans]).to.deep.equal(['Dense', 'task', false, [12, 10]]);
    expect(l.spec('task')).to.deep.equal({ rank: 2, alpha: 4, dropout: 0, rsLora: false, init: 'kaiming' });
    lora.dispose();
    base.dispose();
  });
});
