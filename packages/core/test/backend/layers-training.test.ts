import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { normals, relativeError, useShimmedWasm } from './helpers';

/** 12x12 images, one bright 3x3 blob; the label says whether it sits in the left or the right half. */
function blobs(n: number): { xs: tf.Tensor4D; ys: tf.Tensor2D } {
  const noise = normals(n * 144, 5);
  const images = new Float32Array(n * 144);
  const labels = new Float32Array(n * 2);
  for (let i = 0; i < n; i++) {
    const right = i % 2;
    const r = 1 + ((i * 7) % 8);
    const c = (right ? 7 : 1) + ((i * 5) % 3);
    for (let p = 0; p < 144; p++) images[i * 144 + p] = 0.1 * noise[i * 144 + p];
    for (let dr = 0; dr < 3; dr++) for (let dc = 0; dc < 3; dc++) images[i * 144 + (r + dr) * 12 + c + dc] += 1;
    labels[i * 2 + right] = 1;
  }
  return { xs: tf.tensor4d(images, [n, 12, 12, 1]), ys: tf.tensor2d(labels, [n, 2]) };
}

function cnn(): tf.Sequential {
  const init = (seed: number) => tf.initializers.glorotUniform({ seed });
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [12, 12, 1], filters: 8, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(1) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.conv2d({ filters: 16, kernelSize: 3, padding: 'same', activation: 'relu', kernelInitializer: init(2) }),
      tf.layers.maxPooling2d({ poolSize: 2 }),
      tf.layers.flatten(),
      tf.layers.dense({ units: 16, activation: 'relu', kernelInitializer: init(3) }),
      tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: init(4) }),
    ],
  });
}

describe('backend: a tfjs-layers CNN trains on shimmed wasm', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));

  it('fit() lowers the loss on a small synthetic task and classifies it', async () => {
    const { xs, ys } = blobs(64);
    const model = cnn();
    model.compile({ optimizer: tf.train.adam(0.01), loss: 'categoricalCrossentropy', metrics: ['accuracy'] });
    const history = await model.fit(xs, ys, { epochs: 8, batchSize: 16, shuffle: false, verbose: 0 });
    const loss = history.history.loss as number[];
    expect(loss[loss.length - 1]).to.be.below(0.5 * loss[0]);
    const accuracy = history.history.acc as number[];
    expect(accuracy[accuracy.length - 1]).to.be.at.least(0.9);
    model.dispose();
    tf.dispose([xs, ys]);
  });

  it('one SGD step gives the same weights on wasm and cpu', async () => {
    const step = async () => {
      const { xs, ys } = blobs(16);
      const model = cnn();
      model.compile({ optimizer: tf.train.sgd(0.1), loss: 'categoricalCrossentropy' });
      await model.fit(xs, ys, { epochs: 1, batchSize: 16, shuffle: false, verbose: 0 });
      const weights = model.getWeights().map((w) => w.dataSync().slice());
      model.dispose();
      tf.dispose([xs, ys]);
      return weights;
    };
    const wasm = await step();
    await tf.setBackend('cpu');
    const cpu = await step().finally(() => tf.setBackend('wasm'));
    wasm.forEach((w, i) => expect(relativeError(w, cpu[i]), `weight ${i}`).to.be.below(1e-4));
  });

  it('a dilated Conv2D layer with a linear activation trains on cpu and wasm (stock tfjs refuses its gradient): the gradients of conv2d + bias, with and without a bias', async () => {
    const x = tf.tensor4d(normals(2 * 9 * 8 * 3, 11), [2, 9, 8, 3]);
    const grads = (useBias: boolean) => tf.tidy(() => {
      const layer = tf.layers.conv2d({ inputShape: [9, 8, 3], filters: 4, kernelSize: 3, dilationRate: 2, padding: 'same', useBias, kernelInitializer: tf.initializers.glorotUniform({ seed: 7 }), biasInitializer: tf.initializers.randomNormal({ seed: 8 }) });
      const model = tf.sequential({ layers: [layer] });
      const w = tf.tensor4d(normals(2 * 9 * 8 * 4, 12), [2, 9, 8, 4]);
      const vars = model.trainableWeights.map((v) => v.read() as tf.Variable);
      const viaLayer = tf.variableGrads(() => (model.apply(x, { training: true }) as tf.Tensor).mul(w).sum() as tf.Scalar, vars).grads;
      // The same function written with the unfused ops, whose (dilated) gradient the fixes provide.
      const plain = () => {
        const y = tf.conv2d(x, vars[0] as tf.Tensor4D, 1, 'same', 'NHWC', 2);
        return (useBias ? y.add(vars[1]) : y).mul(w).sum() as tf.Scalar;
      };
      const viaOps = tf.variableGrads(plain, vars).grads;
      return vars.map((v) => [Array.from(viaLayer[v.name].dataSync()), Array.from(viaOps[v.name].dataSync())]);
    });
    for (const backend of ['wasm', 'cpu']) {
      await tf.setBackend(backend);
      for (const useBias of [true, false]) {
        const pairs = grads(useBias);
        expect(pairs).to.have.length(useBias ? 2 : 1);
        pairs.forEach(([layer, ops], k) => expect(relativeError(layer, ops), `${backend}, bias ${useBias}, variable ${k}`).to.be.below(1e-5));
      }
    }
    await tf.setBackend('wasm');
    x.dispose();
  });
});
