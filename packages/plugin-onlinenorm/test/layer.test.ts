import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { activationClamp, layerScale, OnlineNorm, onlineNorm, onlineNormLayer, type ErrorCompensation } from '../src';
import { expectClose, expectNoLeak, randomInput, rng, toSamples } from './helpers';
import { refAffineEcmBackward, refAffineEcmForward, refBackward, refForward, refState, type RefEcm, type Sample } from './reference';

/** Apply the layer in training mode and return its output and the gradients of <out, g> w.r.t. x, gamma, beta. */
function layerStep(layer: OnlineNorm, xValue: tf.Tensor, g: tf.Tensor, kwargs: Record<string, unknown> = { training: true }) {
  return tf.tidy(() => {
    const x = tf.variable(xValue, true, undefined);
    let out!: tf.Tensor;
    const weights = layer.trainableWeights.map((w) => w.read() as tf.Variable);
    const { grads } = tf.variableGrads(() => {
      out = tf.keep(layer.apply(x, kwargs) as tf.Tensor);
      return tf.sum(tf.mul(out, g));
    }, [x, ...weights]);
    const result = {
      out: out.dataSync(),

      dx: grads[x.name].dataSync(),
      dgamma: weights[0] ? grads[weights[0].name].dataSync() : undefined,
      dbeta: weights[1] ? grads[weights[1].name].dataSync() : undefined,
    };
    x.dispose();
    out.dispose();
    return result;
  });
}

/** Build by a first (inference) call, as tfjs-layers expects before dispose(). */
function built(layer: OnlineNorm, inner: number[]): OnlineNorm {
  tf.tidy(() => <tf.Tensor>layer.apply(tf.zeros([1, ...inner])));
  return layer;
}

function stateOf(layer: OnlineNorm): number[][] {
  const s = layer.state;
  return [s.mean, s.variance, s.u, s.v].map((t) => Array.from(t.dataSync()));
}

describe('OnlineNorm layer', () => {
  before(async () => {
    await tf.setBackend('cpu');
  });

  describe('forward and backward of the full layer (affine + error compensation) match the float64 reference', () => {
    const ecms: [ErrorCompensation, RefEcm][] = [
      ['none', { kind: 'none' }],
      ['ac', { kind: 'ac', clamp: 5 }],
      ['ls', { kind: 'ls', epsLs: 1e-5 }],
    ];
    for (const [ecm, refEcm] of ecms) {
      for (const inner of [[3], [2, 3, 3]]) {
        it(`ecm '${ecm}', input [N, ${inner}]`, () => {
          const channels = inner[inner.length - 1];
          const layer = built(onlineNormLayer({ alphaFwd: 0.9, alphaBkw: 0.8, ecm }), inner);
          const gamma = [2.5, -1.5, 3].slice(0, channels);
          const beta = [0.5, 1, -0.25].slice(0, channels);
          tf.tidy(() => layer.setWeights([tf.tensor1d(gamma), tf.tensor1d(beta), ...layer.getWeights().slice(2)]));
          const ref = refState(channels);
          let sawClamp = false;
          [4, 1, 6].forEach((n, k) => {
            const x = randomInput([n, ...inner], 30 + k, 1, 2);
            const g = randomInput([n, ...inner], 60 + k);
            const got = layerStep(layer, x, g);
            const fwd = refForward(toSamples(x), ref, 0.9, 1e-5);
            const outs: Sample[] = [];
            const dys: Sample[] = [];
            const dgamma = Array(channels).fill(0);
            const dbeta = Array(channels).fill(0);
            toSamples(g).forEach((dout, i) => {
              const f = refAffineEcmForward(fwd.y[i], gamma, beta, refEcm);
              const b = refAffineEcmBackward(dout, fwd.y[i], f, gamma, refEcm);
              outs.push(f.out);
              dys.push(b.dy);
              b.dgamma.forEach((v, c) => (dgamma[c] += v));
              b.dbeta.forEach((v, c) => (dbeta[c] += v));
              sawClamp ||= f.z.flat().some((v) => Math.abs(v) > 5);
            });
            const { dx } = refBackward(dys, fwd.y, fwd.scale, ref, 0.8);
            expectClose(got.out, outs, 1e-4, `batch ${k} out`);
            expectClose(got.dx, dx, 1e-4, `batch ${k} dx`);
            expectClose(got.dgamma!, dgamma, 1e-4, `batch ${k} dgamma`);
            expectClose(got.dbeta!, dbeta, 1e-4, `batch ${k} dbeta`);
            expectClose(stateOf(layer).flat(), [ref.M, ref.V, ref.u, ref.v].flat(), 1e-4, `batch ${k} state`);
            tf.dispose([x, g]);
          });
          if (ecm === 'ac') expect(sawClamp, 'the data should exercise the clamp').to.equal(true);
          layer.dispose();
        });
      }
    }
  });

  describe('error compensation invariants (docs/techniques.md §6.8 item 8)', () => {
    it('activation clamping zeroes the gradient exactly at ±c and beyond, and passes it strictly inside', () => {
      const z = tf.tensor1d([-7, -5, -4.999, 0, 4.999, 5, 6]);
      const dz = tf.tidy(() => tf.grads((t: tf.Tensor) => activationClamp(t, 5))([z], tf.fill([7], 3))[0].arraySync());
      expect(dz).to.deep.equal([0, 0, 3, 3, 3, 0, 0]);
      expect(activationClamp(z, 5).arraySync()).to.deep.equal([-5, -5, -4.999, 0, 4.999, 5, 5].map(Math.fround));
      tf.dispose(z);
    });

    it('layer scaling: the backward is orthogonal to the output, per sample, when eps_ls = 0', () => {
      const z = randomInput([3, 2, 2, 4], 1, 1, 3);
      const dout = randomInput([3, 2, 2, 4], 2);
      const [dz, out] = tf.tidy(() => [tf.grads((t: tf.Tensor) => layerScale(t, 0))([z], dout)[0].arraySync(), layerScale(z, 0).arraySync()]) as number[][][][][];
      for (let i = 0; i < 3; i++) {
        const a = dz[i].flat(2);
        const b = out[i].flat(2);
        const dot = a.reduce((s, v, j) => s + v * b[j], 0);
        const norms = Math.hypot(...a) * Math.hypot(...b);
        expect(Math.abs(dot) / norms, `sample ${i}`).to.be.below(1e-6);
        expect(b.reduce((s, v) => s + v * v, 0) / b.length, 'unit mean square').to.be.closeTo(1, 1e-5);
      }
      tf.dispose([z, dout]);
    });
  });

  describe('modes', () => {
    it('inference (no training flag, predict) uses the running statistics and changes no state', () => {
      const model = tf.sequential({ layers: [onlineNormLayer({ inputShape: [3], ecm: 'none', alphaFwd: 0.9 })] });
      const layer = model.layers[0] as OnlineNorm;
      const x = randomInput([5, 3], 1, 2, 1);
      layerStep(layer, x, tf.onesLike(x));
      const before = stateOf(layer);
      const predicted = (model.predict(x) as tf.Tensor).arraySync() as number[][];
      layerStep(layer, x, tf.onesLike(x), { training: false });
      expect(stateOf(layer)).to.deep.equal(before);
      const [M, V] = before;
      const expected = (x.arraySync() as number[][]).map((row) => row.map((v, c) => (v - M[c]) / Math.sqrt(V[c] + 1e-5)));
      expectClose(predicted.flat(), expected.flat(), 1e-6, 'predict');
      tf.dispose(x);
      model.dispose();
    });

    it('recomputing (kwarg or property) replays the last training call without touching M, V; u, v still update', () => {
      const twin = () => {
        return built(onlineNormLayer({ alphaFwd: 0.9, alphaBkw: 0.9 }), [2, 2, 3]);
      };
      const plain = twin();
      const recomputed = twin();
      const x = randomInput([4, 2, 2, 3], 1, 1, 2);
      const g = randomInput([4, 2, 2, 3], 2);
      const expected = layerStep(plain, x, g);
      // The executor: an untaped training forward, then the recompute whose backward runs.
      tf.tidy(() => <tf.Tensor>recomputed.apply(x, { training: true }));
      const got = layerStep(recomputed, x, g, { training: true, recomputing: true });
      expectClose(got.out, expected.out, 1e-6, 'out');
      expectClose(got.dx, expected.dx, 1e-6, 'dx');
      expect(stateOf(recomputed)).to.deep.equal(stateOf(plain));

      expect(() => layerStep(recomputed, x, g, { training: true, recomputing: true })).to.throw(/recompute twice/);
      tf.tidy(() => <tf.Tensor>recomputed.apply(x, { training: true }));
      recomputed.recomputing = true;
      expect(() => layerStep(recomputed, x, g)).not.to.throw();
      const fresh = twin();
      expect(() => layerStep(fresh, x, g, { training: true, recomputing: true })).to.throw(/no training forward to replay/);
      tf.dispose([x, g]);
      [plain, recomputed, fresh].forEach((l) => l.dispose());
    });

    it('one layer called at every step of a recurrent loop carries its statistics across the calls', () => {
      const layer = built(onlineNormLayer({ alphaFwd: 0.8, alphaBkw: 0.9, ecm: 'none', affine: false }), [2]);
      const ref = refState(2);
      const xs = [0, 1, 2].map((t) => randomInput([3, 2], t, 1, 1));
      tf.tidy(() => xs.forEach((x) => void layer.apply(x, { training: true })));
      xs.forEach((x) => refForward(toSamples(x), ref, 0.8, 1e-5));
      expectClose(stateOf(layer).slice(0, 2).flat(), [ref.M, ref.V].flat(), 1e-5, 'M, V after 3 calls');
      tf.dispose(xs);
      layer.dispose();
    });
  });

  it('batch size 1: a small network trains with model.fit and converges', async () => {
    const rand = rng(3);
    const n = 200;
    const xs: number[][] = [];
    const ys: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = [0, 1, 2, 3].map(() => 3 + 2 * (rand() - 0.5) * 2);
      xs.push(row);
      ys.push(row[0] + row[1] > 6 ? 1 : 0);
    }
    const model = tf.sequential({
      layers: [
        tf.layers.dense({ units: 8, inputShape: [4], kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
        onlineNormLayer({ alphaFwd: 0.99, alphaBkw: 0.99 }),
        tf.layers.activation({ activation: 'relu' }),
        tf.layers.dense({ units: 1, activation: 'sigmoid', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
      ],
    });
    model.compile({ optimizer: tf.train.sgd(0.05), loss: 'binaryCrossentropy', metrics: ['accuracy'] });
    const x = tf.tensor2d(xs);
    const y = tf.tensor2d(ys, [n, 1]);
    const before = (model.evaluate(x, y) as tf.Scalar[]).map((t) => t.dataSync()[0]);
    const u0 = stateOf(model.layers[1] as OnlineNorm)[2];
    const history = await model.fit(x, y, { batchSize: 1, epochs: 4, shuffle: false, verbose: 0 });
    const after = (model.evaluate(x, y) as tf.Scalar[]).map((t) => t.dataSync()[0]);
    expect(after[0], 'loss').to.be.below(0.5 * before[0]);
    expect(after[1], 'accuracy').to.be.above(0.9);
    expect(history.history['loss'].length).to.equal(4);
    const state = (model.layers[1] as OnlineNorm).state;
    expect(state.trainingCalls, 'one training forward per sample').to.equal(4 * n);
    expect(state.backwardCalls, 'one backward per sample').to.equal(4 * n);
    expect(stateOf(model.layers[1] as OnlineNorm)[2]).not.to.deep.equal(u0);
    tf.dispose([x, y]);
    model.dispose();
  });

  describe('serialization', () => {
    const build = () => {
      const model = tf.sequential({
        layers: [
          tf.layers.conv2d({ filters: 3, kernelSize: 2, inputShape: [4, 4, 2] }),
          onlineNormLayer({ name: 'on1', alphaFwd: 0.95, alphaBkw: 0.9, ecm: 'ls', epsLs: 1e-4 }),
          tf.layers.flatten(),
          tf.layers.dense({ units: 2 }),
        ],
      });
      const layer = model.getLayer('on1') as OnlineNorm;
      for (let k = 0; k < 3; k++) {
        const x = randomInput([5, 4, 4, 2], k, 1, 2);
        tf.tidy(() => tf.variableGrads(() => tf.sum(tf.square(model.apply(x, { training: true }) as tf.Tensor))));
        x.dispose();
      }
      return { model, layer };
    };

    const expectSameModel = (a: tf.LayersModel, b: tf.LayersModel) => {
      const la = a.getLayer('on1') as OnlineNorm;
      const lb = b.getLayer('on1') as OnlineNorm;
      expect(lb).to.be.instanceOf(OnlineNorm);
      expect(lb.options).to.deep.equal(la.options);
      expect(stateOf(lb)).to.deep.equal(stateOf(la));
      expect(lb.weights.map((w) => w.originalName.split('/').pop())).to.deep.equal(['gamma', 'beta', 'mean', 'variance', 'u', 'v']);
      a.weights.forEach((w, i) => expect(Array.from(b.weights[i].read().dataSync())).to.deep.equal(Array.from(w.read().dataSync())));
      // Continuing training from either gives the same outputs and state: the statistics round-tripped.
      const x = randomInput([2, 4, 4, 2], 99, 1, 2);
      const outs = [a, b].map((m) =>
        tf.tidy(() => {
          let out!: tf.Tensor;
          tf.variableGrads(() => tf.sum(tf.square((out = tf.keep(m.apply(x, { training: true }) as tf.Tensor)))));
          return out.dataSync();
        }),
      );
      expect(Array.from(outs[1])).to.deep.equal(Array.from(outs[0]));
      expect(stateOf(lb)).to.deep.equal(stateOf(la));
      x.dispose();
    };

    it('model.save / tf.loadLayersModel round-trip through an in-memory IOHandler, statistics included', async () => {
      const { model, layer } = build();
      expect(layer.state.trainingCalls).to.equal(3);
      let artifacts!: tf.io.ModelArtifacts;
      await model.save(tf.io.withSaveHandler(async (a) => ((artifacts = a), { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) })));
      expect(JSON.stringify(artifacts.modelTopology)).to.contain('"class_name":"OnlineNorm"');
      const loaded = await tf.loadLayersModel(tf.io.fromMemory(artifacts));
      expectSameModel(model, loaded);
      model.dispose();
      loaded.dispose();
    });

    it("file:// save and load without tfjs-node (core's file router)", async () => {
      const { model } = build();
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'onlinenorm-'));
      try {
        await model.save(`file://${dir}`);
        expect(fs.readdirSync(dir).sort()).to.deep.equal(['model.json', 'weights.bin']);
        const loaded = await tf.loadLayersModel(`file://${dir}/model.json`);
        expectSameModel(model, loaded);
        loaded.dispose();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
        model.dispose();
      }
    });
  });

  describe('hygiene and bad input', () => {
    it('a training step and an inference call leak no tensor', () => {
      const layer = built(onlineNormLayer({ ecm: 'ac' }), [3, 3, 4]);
      const x = randomInput([8, 3, 3, 4], 1);
      const g = randomInput([8, 3, 3, 4], 2);
      layerStep(layer, x, g);
      expectNoLeak(() => layerStep(layer, x, g), 'training step');
      expectNoLeak(() => tf.tidy(() => void layer.apply(x, { training: false })), 'inference');
      tf.dispose([x, g]);
      layer.dispose();
    });

    it('rejects bad options with a message naming the option; alpha = 1 is allowed', () => {
      for (const alphaFwd of [0, -0.1, 1.5, NaN]) expect(() => onlineNormLayer({ alphaFwd })).to.throw(/option 'alphaFwd' must be in \(0, 1\]/);
      expect(() => onlineNormLayer({ alphaBkw: 0 })).to.throw(/option 'alphaBkw' must be in \(0, 1\]/);
      expect(() => onlineNormLayer({ alphaFwd: 1, alphaBkw: 1 })).not.to.throw();
      expect(() => onlineNormLayer({ ecm: 'bn' as ErrorCompensation })).to.throw(/option 'ecm' must be 'ac'/);
      expect(() => onlineNormLayer({ clamp: 0 })).to.throw(/option 'clamp'/);
      expect(() => onlineNormLayer({ epsilon: -1 })).to.throw(/option 'epsilon'/);
      expect(() => onlineNormLayer({ checkFiniteEvery: 0.5 })).to.throw(/option 'checkFiniteEvery'/);
      expect(() => onlineNormLayer({ alphaF: 0.9 } as never)).to.throw(/option 'alphaF' is not an option \(did you mean 'alphaFwd'\?\)/);
    });

    it("replace's and the plugin's own options are among those a misspelt key is matched against", () => {
      expect(() => onlineNorm({ replaces: ['bn'] } as never)).to.throw(/online-norm: option 'replaces' is not an option \(did you mean 'replace'\?\)/);
      expect(() => onlineNorm({ copyStatistic: false } as never)).to.throw(/option 'copyStatistic' is not an option \(did you mean 'copyStatistics'\?\)/);
    });

    it('rejects an input with the wrong channel count, naming the layer', () => {
      const layer = built(onlineNormLayer({ name: 'norm_a' }), [3]);
      expect(() => tf.tidy(() => <tf.Tensor>layer.apply(tf.zeros([2, 4]), { training: true }))).to.throw(/OnlineNorm 'norm_a'.*4 channels.*built for 3/);
      layer.dispose();
    });

    it('NaN in the input fails the training call with an error naming the layer and the call, state unchanged', () => {
      const layer = built(onlineNormLayer({ name: 'norm_b' }), [2]);
      tf.tidy(() => <tf.Tensor>layer.apply(tf.ones([2, 2]), { training: true }));
      const before = stateOf(layer);
      expect(() => tf.tidy(() => <tf.Tensor>layer.apply(tf.tensor2d([[1, NaN]]), { training: true }))).to.throw(/OnlineNorm 'norm_b'.*training call 2/);
      expect(stateOf(layer)).to.deep.equal(before);
      layer.dispose();
    });
  });
});
