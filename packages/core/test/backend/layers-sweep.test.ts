import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useShimmedWasm, webgpuOrSkip } from './helpers';

/*
 * tfjs-layers layers on shimmed wasm (and webgpu where there is an adapter) against cpu: the loss and the gradient of every
 * trainable weight for the same weights and inputs, in training mode. What a user who
 * brings an existing tfjs-layers model trains through. A sweep like this found that a
 * dilated Conv2D with a linear activation could not train on cpu (wasm-shim/dilated-fused-conv.ts).
 */

const L = tf.layers;

interface LayerCase {
  input: number[];
  build: () => tf.LayersModel;
  ints?: boolean;
}

const CASES: Record<string, LayerCase> = {
  'dense, tanh': { input: [3, 5], build: () => tf.sequential({ layers: [L.dense({ inputShape: [5], units: 4, activation: 'tanh' }), L.dense({ units: 2 })] }) },
  embedding: { input: [3, 6], ints: true, build: () => tf.sequential({ layers: [L.embedding({ inputDim: 10, outputDim: 4, inputLength: 6 }), L.flatten(), L.dense({ units: 2 })] }) },
  'embedding with a mask into an LSTM': { input: [3, 6], ints: true, build: () => tf.sequential({ layers: [L.embedding({ inputDim: 10, outputDim: 4, maskZero: true, inputLength: 6 }), L.lstm({ units: 3 }), L.dense({ units: 2 })] }) },
  'conv1d, stride 2; global average pooling': { input: [2, 9, 3], build: () => tf.sequential({ layers: [L.conv1d({ inputShape: [9, 3], filters: 4, kernelSize: 3, strides: 2, activation: 'relu' }), L.globalAveragePooling1d(), L.dense({ units: 2 })] }) },
  'conv1d, dilation 2': { input: [2, 12, 3], build: () => tf.sequential({ layers: [L.conv1d({ inputShape: [12, 3], filters: 4, kernelSize: 3, dilationRate: 2 }), L.flatten(), L.dense({ units: 2 })] }) },
  'conv2d, dilation 2 (linear), then stride 2 (elu)': { input: [2, 9, 8, 3], build: () => tf.sequential({ layers: [L.conv2d({ inputShape: [9, 8, 3], filters: 4, kernelSize: 3, dilationRate: 2, padding: 'same' }), L.conv2d({ filters: 3, kernelSize: 2, strides: 2, activation: 'elu' }), L.flatten(), L.dense({ units: 2 })] }) },
  'conv2d, dilation 2, no bias': { input: [2, 9, 8, 3], build: () => tf.sequential({ layers: [L.conv2d({ inputShape: [9, 8, 3], filters: 4, kernelSize: 3, dilationRate: 2, useBias: false }), L.flatten(), L.dense({ units: 2 })] }) },
  'depthwise conv2d, multiplier 2, stride 2': { input: [2, 8, 8, 3], build: () => tf.sequential({ layers: [L.depthwiseConv2d({ inputShape: [8, 8, 3], kernelSize: 3, depthMultiplier: 2, strides: 2 }), L.flatten(), L.dense({ units: 2 })] }) },
  'depthwise conv2d, dilation 2': { input: [2, 9, 9, 3], build: () => tf.sequential({ layers: [L.depthwiseConv2d({ inputShape: [9, 9, 3], kernelSize: 3, dilationRate: 2 }), L.flatten(), L.dense({ units: 2 })] }) },
  'conv2d transpose, stride 2': { input: [2, 4, 4, 3], build: () => tf.sequential({ layers: [L.conv2dTranspose({ inputShape: [4, 4, 3], filters: 2, kernelSize: 3, strides: 2, padding: 'same' }), L.flatten(), L.dense({ units: 2 })] }) },
  'conv3d; max pooling 3-D': { input: [1, 4, 4, 4, 2], build: () => tf.sequential({ layers: [L.conv3d({ inputShape: [4, 4, 4, 2], filters: 3, kernelSize: 2 }), L.maxPooling3d({ poolSize: 2 }), L.flatten(), L.dense({ units: 2 })] }) },
  'average pooling 3-D': { input: [1, 4, 4, 4, 2], build: () => tf.sequential({ layers: [L.averagePooling3d({ inputShape: [4, 4, 4, 2], poolSize: 2 }), L.flatten(), L.dense({ units: 2 })] }) },
  'pooling, upsampling, padding, cropping': { input: [2, 8, 8, 3], build: () => tf.sequential({ layers: [L.averagePooling2d({ inputShape: [8, 8, 3], poolSize: 3, strides: 2, padding: 'same' }), L.maxPooling2d({ poolSize: 2 }), L.upSampling2d({ size: [2, 2] }), L.zeroPadding2d({ padding: 1 }), L.cropping2D({ cropping: [[1, 0], [0, 1]] }), L.conv2d({ filters: 2, kernelSize: 1 }), L.flatten(), L.dense({ units: 2 })] }) },
  // No bias before the normalisation: its gradient is zero up to rounding, so no relative comparison holds.
  'batch normalization after a conv2d without bias': { input: [4, 6, 6, 3], build: () => tf.sequential({ layers: [L.conv2d({ inputShape: [6, 6, 3], filters: 4, kernelSize: 3, useBias: false }), L.batchNormalization(), L.reLU(), L.flatten(), L.dense({ units: 2 })] }) },
  'layer normalization': { input: [3, 5], build: () => tf.sequential({ layers: [L.dense({ inputShape: [5], units: 6 }), L.layerNormalization(), L.dense({ units: 2 })] }) },
  'stacked LSTMs': { input: [3, 5, 4], build: () => tf.sequential({ layers: [L.lstm({ inputShape: [5, 4], units: 3, returnSequences: true }), L.lstm({ units: 3 }), L.dense({ units: 2 })] }) },
  'GRU, backwards': { input: [3, 5, 4], build: () => tf.sequential({ layers: [L.gru({ inputShape: [5, 4], units: 3, goBackwards: true }), L.dense({ units: 2 })] }) },
  'simple RNN; time-distributed dense': { input: [3, 5, 4], build: () => tf.sequential({ layers: [L.simpleRNN({ inputShape: [5, 4], units: 3, returnSequences: true }), L.timeDistributed({ layer: L.dense({ units: 2 }) }), L.flatten(), L.dense({ units: 2 })] }) },
  'bidirectional LSTM; global max pooling': { input: [3, 5, 4], build: () => tf.sequential({ layers: [L.bidirectional({ inputShape: [5, 4], layer: L.lstm({ units: 3, returnSequences: true }) as tf.RNN, mergeMode: 'concat' }), L.globalMaxPooling1d(), L.dense({ units: 2 })] }) },
  'conv LSTM 2-D': { input: [2, 3, 5, 5, 2], build: () => tf.sequential({ layers: [L.convLstm2d({ inputShape: [3, 5, 5, 2], filters: 2, kernelSize: 3, padding: 'same' }), L.flatten(), L.dense({ units: 2 })] }) },
  'activation layers and functions': {
    input: [3, 5],
    build: () => tf.sequential({ layers: [L.dense({ inputShape: [5], units: 6 }), L.leakyReLU({ alpha: 0.2 }), L.dense({ units: 6 }), L.prelu(), L.dense({ units: 6 }), L.elu(), L.dense({ units: 6, activation: 'softsign' }), L.dense({ units: 6, activation: 'hardSigmoid' }), L.dense({ units: 6, activation: 'selu' }), L.dense({ units: 6, activation: 'swish' }), L.dense({ units: 6, activation: 'mish' }), L.dense({ units: 2, activation: 'softmax' })] }),
  },
  'reshape, permute, repeat vector': { input: [3, 6], build: () => tf.sequential({ layers: [L.dense({ inputShape: [6], units: 6 }), L.reshape({ targetShape: [2, 3] }), L.permute({ dims: [2, 1] }), L.flatten(), L.repeatVector({ n: 2 }), L.flatten(), L.dense({ units: 2 })] }) },
  'separable conv2d, stride 2; global max pooling 2-D': { input: [2, 8, 8, 3], build: () => tf.sequential({ layers: [L.separableConv2d({ inputShape: [8, 8, 3], filters: 4, kernelSize: 3, depthMultiplier: 2, strides: 2, padding: 'same', activation: 'relu' }), L.globalMaxPooling2d({}), L.dense({ units: 2 })] }) },
  'conv3d transpose, stride 2': { input: [2, 3, 3, 2, 2], build: () => tf.sequential({ layers: [L.conv3dTranspose({ inputShape: [3, 3, 2, 2], filters: 2, kernelSize: 3, strides: 2, padding: 'same' }), L.flatten(), L.dense({ units: 2 })] }) },
  'bilinear upsampling; rescaling, resizing': { input: [2, 6, 6, 3], build: () => tf.sequential({ layers: [L.rescaling({ inputShape: [6, 6, 3], scale: 0.5, offset: 0.1 }), L.conv2d({ filters: 3, kernelSize: 3, padding: 'same' }), L.upSampling2d({ size: [2, 2], interpolation: 'bilinear' }), L.resizing({ height: 8, width: 10 }), L.globalAveragePooling2d({}), L.dense({ units: 2 })] }) },
  'masking into a GRU': { input: [3, 5, 4], build: () => tf.sequential({ layers: [L.masking({ inputShape: [5, 4], maskValue: 0 }), L.gru({ units: 3 }), L.dense({ units: 2 })] }) },
  'merge layers: minimum, dot (normalised)': {
    input: [3, 5],
    build: () => {
      const i = tf.input({ shape: [5] });
      const a = L.dense({ units: 4 }).apply(i) as tf.SymbolicTensor;
      const b = L.dense({ units: 4, activation: 'tanh' }).apply(i) as tf.SymbolicTensor;
      const dot = L.dot({ axes: 1, normalize: true }).apply([a, b]) as tf.SymbolicTensor;
      const merged = L.concatenate().apply([L.minimum().apply([a, b]), dot] as tf.SymbolicTensor[]) as tf.SymbolicTensor;
      return tf.model({ inputs: i, outputs: L.dense({ units: 2 }).apply(merged) as tf.SymbolicTensor });
    },
  },
  'batch normalization along axis 1 (channels first), and along a middle axis': { input: [2, 3, 4, 4], build: () => tf.sequential({ layers: [L.conv2d({ inputShape: [3, 4, 4], filters: 4, kernelSize: 3, padding: 'same', dataFormat: 'channelsFirst', useBias: false }), L.batchNormalization({ axis: 1 }), L.batchNormalization({ axis: 2 }), L.flatten(), L.dense({ units: 2 })] }) },
  'causal dilated conv1d, stride 2 causal conv1d': { input: [2, 8, 3], build: () => tf.sequential({ layers: [L.conv1d({ inputShape: [8, 3], filters: 4, kernelSize: 3, dilationRate: 2, padding: 'causal', activation: 'tanh' }), L.conv1d({ filters: 2, kernelSize: 2, strides: 2, padding: 'causal' }), L.flatten(), L.dense({ units: 2 })] }) },
  'conv LSTM 2-D, channels first (its cell calls conv2d with NCHW, which wasm refused)': { input: [2, 3, 2, 5, 5], build: () => tf.sequential({ layers: [L.convLstm2d({ inputShape: [3, 2, 5, 5], filters: 2, kernelSize: 3, padding: 'same', dataFormat: 'channelsFirst' }), L.flatten(), L.dense({ units: 2 })] }) },
  'merge layers (functional model)': {
    input: [3, 5],
    build: () => {
      const i = tf.input({ shape: [5] });
      const a = L.dense({ units: 4 }).apply(i) as tf.SymbolicTensor;
      const b = L.dense({ units: 4, activation: 'relu' }).apply(i) as tf.SymbolicTensor;
      const merged = L.concatenate().apply([L.add().apply([a, b]), L.multiply().apply([a, b]), L.average().apply([a, b]), L.maximum().apply([a, b])] as tf.SymbolicTensor[]) as tf.SymbolicTensor;
      return tf.model({ inputs: i, outputs: L.dense({ units: 2 }).apply(merged) as tf.SymbolicTensor });
    },
  },
};

/** Loss and per-weight gradients of one batch in training mode, with the given weights (or the model's own, returned). */
function lossAndGradients(c: LayerCase, weights?: tf.Tensor[]): { loss: number; grads: Float32Array[]; weights: tf.Tensor[] } {
  return tf.tidy(() => {
    const model = c.build();
    if (weights) model.setWeights(weights);
    const n = c.input.reduce((a, b) => a * b);
    const values = Array.from({ length: n }, (_, i) => (c.ints ? ((i * 7 + 3) % 10) * (i % 4 === 3 ? 0 : 1) : Math.sin(i * 1.3) * 1.5));
    const x = tf.tensor(values, c.input, c.ints ? 'int32' : 'float32');
    const y = tf.oneHot(tf.tensor1d(Array.from({ length: c.input[0] }, (_, i) => i % 2), 'int32'), 2);
    const vars = model.trainableWeights.map((w) => w.read() as tf.Variable);
    const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, model.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, vars);
    return { loss: value.dataSync()[0], grads: vars.map((v) => grads[v.name].dataSync() as Float32Array), weights: model.getWeights().map((w) => tf.keep(w.clone())) };
  });
}

for (const backend of ['wasm', 'webgpu']) describe(`backend: tfjs-layers layers train on ${backend === 'wasm' ? 'shimmed wasm' : 'webgpu'} as on cpu (loss and every weight gradient)`, function () {
  before(async function () {
    await useShimmedWasm();
    if (backend === 'webgpu') await webgpuOrSkip(this, 'tfjs-layers layers on webgpu');
  });
  after(() => tf.setBackend('cpu'));
  for (const [name, c] of Object.entries(CASES)) {
    it(name, async () => {
      const got = lossAndGradients(c);
      await tf.setBackend('cpu');
      // This backend's weights, copied to cpu.
      const copied = got.weights.map((w) => tf.tensor(w.dataSync(), w.shape, w.dtype));
      const cpu = await Promise.resolve(lossAndGradients(c, copied)).finally(() => tf.setBackend(backend));
      expect(Math.abs(got.loss - cpu.loss)).to.be.below(1e-5 * Math.max(1, Math.abs(cpu.loss)));
      expect(got.grads).to.have.length(cpu.grads.length);
      expect(got.grads.length).to.be.above(0);
      // Relative to the larger of the gradient's largest element and 0.01: a bias gradient is
      // a sum of terms that can cancel to near zero, where float32 rounding in another order
      // is a large part of what is left (a wrong kernel is off by the whole magnitude).
      got.grads.forEach((g, k) => {
        const scale = Math.max(0.01, ...Array.from(cpu.grads[k], Math.abs));
        const diff = Math.max(...Array.from(g, (v, i) => Math.abs(v - cpu.grads[k][i])));
        expect(diff / scale, `weight ${k}`).to.be.below(1e-4);
      });
      tf.dispose([...got.weights, ...copied, ...cpu.weights]);
    });
  }
});

describe('backend: tfjs-layers Resizing inside a model (wasm-shim/resizing-layer.ts)', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));
  it("reports a batched output shape and resizes a model's input as the op does (tfjs-layers' reported [8, 10, 6] and threw)", () => {
    const model = tf.sequential({ layers: [L.resizing({ inputShape: [6, 6, 3], height: 8, width: 10 })] });
    expect(model.outputs[0].shape).to.deep.equal([null, 8, 10, 3]);
    const x = tf.tensor4d(Array.from({ length: 216 }, (_, i) => Math.sin(i)), [2, 6, 6, 3]);
    const [y, expected] = tf.tidy(() => [model.predict(x) as tf.Tensor, tf.image.resizeBilinear(x, [8, 10], true)].map((t) => ({ shape: t.shape, values: Array.from(t.dataSync()) })));
    expect(y.shape).to.deep.equal([2, 8, 10, 3]);
    expect(y.values).to.deep.equal(expected.values);
    tf.dispose(x);
    model.dispose();
  });
});

describe('backend: tfjs-layers BatchNormalization with scale or center off, in training (wasm-shim/batch-norm-layer.ts)', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));
  for (const options of [{ scale: false }, { center: false }, { scale: false, center: false }]) {
    it(`${JSON.stringify(options)}: trains as the full layer with gamma 1 and beta 0 (tfjs-layers threw), without extra weights`, () => {
      const build = (o: object) => tf.sequential({ layers: [L.dense({ inputShape: [3], units: 4, kernelInitializer: 'glorotNormal' }), L.batchNormalization(o), L.dense({ units: 2 })] });
      const [off, full] = [build(options), build({})];
      expect(off.getWeights()).to.have.length(full.getWeights().length - Object.keys(options).length);
      // The same dense weights in both; the full layer's gamma and beta stay 1 and 0.
      const [d1, d2] = [off.layers[0].getWeights(), off.layers[2].getWeights()];
      full.layers[0].setWeights(d1);
      full.layers[2].setWeights(d2);
      const x = tf.tensor2d(Array.from({ length: 15 }, (_, i) => Math.sin(i * 1.1)), [5, 3]);
      const y = tf.oneHot(tf.tensor1d([0, 1, 1, 0, 1], 'int32'), 2);
      const run = (m: tf.Sequential) => tf.tidy(() => {
        const vars = [...m.layers[0].trainableWeights, ...m.layers[2].trainableWeights].map((w) => w.read() as tf.Variable);
        const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(y, m.apply(x, { training: true }) as tf.Tensor) as tf.Scalar, vars);
        return { loss: value.dataSync()[0], grads: vars.map((v) => Array.from(grads[v.name].dataSync())) };
      });
      const [a, b] = [run(off), run(full)];
      expect(a.loss).to.be.closeTo(b.loss, 1e-6);
      a.grads.forEach((g, k) => g.forEach((v, i) => expect(v, `weight ${k}[${i}]`).to.be.closeTo(b.grads[k][i], 1e-6)));
      tf.dispose([x, y]);
      off.dispose();
      full.dispose();
    });
  }
});

describe('backend: tfjs-layers Conv1D with causal padding (wasm-shim/conv1d-causal-layer.ts)', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));
  it("step t sees steps up to t only: the float64 causal sum, the output length of 'same', and the gradient of zero padding then 'valid' (tfjs-layers threw)", () => {
    const model = tf.sequential({ layers: [L.conv1d({ inputShape: [8, 2], filters: 1, kernelSize: 3, dilationRate: 2, padding: 'causal', kernelInitializer: 'ones', useBias: false })] });
    expect(model.outputs[0].shape).to.deep.equal([null, 8, 1]);
    const values = Array.from({ length: 16 }, (_, i) => Math.sin(i * 0.9));
    const x = tf.tensor3d(values, [1, 8, 2]);
    // y_t = sum over taps at t, t - 2, t - 4 (those >= 0) of both channels.
    const expected = Array.from({ length: 8 }, (_, t) => [0, 2, 4].reduce((sum, d) => (t - d >= 0 ? sum + values[2 * (t - d)] + values[2 * (t - d) + 1] : sum), 0));
    const y = tf.tidy(() => Array.from((model.predict(x) as tf.Tensor).dataSync()));
    y.forEach((v, t) => expect(v, `step ${t}`).to.be.closeTo(expected[t], 1e-5));
    const kernel = model.layers[0].getWeights()[0] as tf.Tensor3D;
    const w = tf.tensor3d(Array.from({ length: 8 }, (_, i) => Math.cos(i)), [1, 8, 1]);
    const [got, want] = [
      (z: tf.Tensor) => model.apply(z) as tf.Tensor,
      (z: tf.Tensor) => tf.conv1d(tf.pad(z, [[0, 0], [4, 0], [0, 0]]) as tf.Tensor3D, kernel, 1, 'valid', 'NWC', 2),
    ].map((f) => tf.tidy(() => Array.from(tf.grad((z: tf.Tensor) => tf.sum(tf.mul(f(z), w)))(x).dataSync())));
    got.forEach((v, i) => expect(v, `gradient ${i}`).to.be.closeTo(want[i], 1e-5));
    tf.dispose([x, w]);
    model.dispose();
  });
});
