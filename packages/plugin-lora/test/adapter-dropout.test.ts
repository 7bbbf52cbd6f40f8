import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { fromLayersModel, losses, noiseKey, SegmentExecutor, type MemoryPolicy, type SegmentContext, type TrainableModel } from '@tapfit/core';
import { describeConformance, tinyModel } from '@tapfit/core/testing';
import { applyLora, lora } from '../src';
import { mlp, perturbAdapters, useCpu } from './helpers';

// With adapter dropout on, the kit's determinism, resume (bitwise) and twin checks hold:
// the masks follow the trainer's seed and the batch, in the plugin and its twin alike.
const options = { targets: 'hidden', rank: 2, alpha: 4, dropout: 0.5, seed: 7, modulesToSave: 'out' } as const;
describeConformance({
  plugin: () => lora(options),
  twin: () => ({ model: applyLora(tinyModel(), options).model }),
  twinTolerance: 0,
});

describe('LoRA adapter dropout under replay', () => {
  useCpu();

  /** One step's loss and gradients by the memory executor, every segment under `policy`. */
  function step(model: TrainableModel, x: tf.Tensor, y: tf.Tensor, policy: MemoryPolicy, ctx: SegmentContext) {
    const variables = [...new Set(model.segments.flatMap((s) => s.params))].filter((v) => v.trainable);
    const plan = { segments: model.segments.map((s) => ({ name: s.name, policy })), extraBytes: [] };
    const r = new SegmentExecutor().compute({ x, y, segments: model.segments, ctx, variables, plan, loss: losses.meanSquaredError });
    const grads = Object.fromEntries(Object.entries(r.grads).map(([k, g]) => [k, Array.from(g.dataSync())]));
    const value = r.value.dataSync()[0];
    tf.dispose([r.value, ...Object.values(r.grads)]);
    return { value, grads };
  }

  it("a recomputed forward draws the loss's adapter mask: gradients equal storing it (B != 0, so the mask matters)", () => {
    const base = mlp();
    const adapted = applyLora(base, { targets: ['fc1', 'fc2'], rank: 3, dropout: 0.5, seed: 1 });
    perturbAdapters(adapted.model, 3, 0.5);
    const model = fromLayersModel(adapted.model);
    const x = tf.randomNormal([8, 6], 0, 1, 'float32', 3);
    const y = tf.randomUniform([8, 3], 0, 1, 'float32', 4);
    const ctx = (serial: number): SegmentContext => ({ training: true, recomputing: false, step: serial, noiseKey: noiseKey(7, serial) });
    const stored = step(model, x, y, 'store', ctx(0));
    const recomputed = step(model, x, y, 'recompute', ctx(0));
    expect(Object.keys(stored.grads).some((k) => /lora_A/.test(k))).to.equal(true);
    expect(recomputed.value).to.equal(stored.value);
    expect(recomputed.grads).to.deep.equal(stored.grads);
    // The mask is live (the test can fail): another batch draws another one.
    expect(step(model, x, y, 'store', ctx(1)).value).to.not.equal(stored.value);
    tf.dispose([x, y]);
    adapted.dispose();
    base.dispose();
  });

  it("unnamed targets: the adapter masks do not follow tfjs's per-process numbering (the same model built again draws the same loss and gradients)", () => {
    // fc1 and fc2 as mlp() builds them, but unnamed: tfjs names them dense_Dense<n>, another n in each build.
    const unnamed = () =>
      tf.sequential({
        layers: [
          tf.layers.dense({ units: 12, inputShape: [6], activation: 'relu', kernelInitializer: tf.initializers.glorotNormal({ seed: 1 }) }),
          tf.layers.dense({ units: 12, kernelInitializer: tf.initializers.glorotNormal({ seed: 2 }) }),
        ],
      });
    const x = tf.randomNormal([8, 6], 0, 1, 'float32', 3);
    const y = tf.randomUniform([8, 12], 0, 1, 'float32', 4);
    const ctx: SegmentContext = { training: true, recomputing: false, step: 0, noiseKey: noiseKey(7, 0) };
    const run = () => {
      const base = unnamed();
      const adapted = applyLora(base, { targets: 'all-dense', rank: 3, dropout: 0.5, seed: 1 });
      perturbAdapters(adapted.model, 3, 0.5);
      const model = fromLayersModel(adapted.model);
      const r = step(model, x, y, 'store', ctx);
      const names = base.layers.map((l) => l.name);
      adapted.dispose();
      base.dispose();
      return { value: r.value, grads: Object.values(r.grads), names };
    };
    const first = run();
    const again = run();
    expect(again.names).to.not.deep.equal(first.names); // the premise: tfjs renumbered the layers
    expect(again.value).to.equal(first.value);
    expect(again.grads).to.deep.equal(first.grads);
    tf.dispose([x, y]);
  });
});
