import * as tf from '@tensorflow/tfjs';

/** Tests run on the cpu backend (the reference backend; bit-exact comparisons assume it). */
export function useCpu(): void {
  before(async () => {
    tf.env().set('PROD', true);
    await tf.setBackend('cpu');
    await tf.ready();
  });
}

/** 784-free small MLP: in 6 -> 12 (relu) -> 10 (tanh) -> 3 (softmax head). */
export function mlp(seed = 1): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.dense({ units: 12, inputShape: [6], activation: 'relu', name: 'fc1', kernelInitializer: tf.initializers.glorotNormal({ seed }), biasInitializer: tf.initializers.randomNormal({ seed: seed + 1, stddev: 0.1 }) }),
      tf.layers.dense({ units: 10, activation: 'tanh', name: 'fc2', kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 2 }), biasInitializer: tf.initializers.randomNormal({ seed: seed + 3, stddev: 0.1 }) }),
      tf.layers.dense({ units: 3, activation: 'softmax', name: 'head', kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 4 }) }),
    ],
  });
}

/** conv(3x3, 4->6, relu) -> BN-free pool -> flatten -> dense head. */
export function cnn(seed = 2): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.conv2d({ inputShape: [7, 7, 4], filters: 6, kernelSize: 3, padding: 'same', activation: 'relu', name: 'conv1', kernelInitializer: tf.initializers.glorotNormal({ seed }), biasInitializer: tf.initializers.randomNormal({ seed: seed + 1, stddev: 0.1 }) }),
      tf.layers.conv2d({ filters: 5, kernelSize: [3, 2], strides: 2, padding: 'valid', name: 'conv2', kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 2 }) }),
      tf.layers.flatten({ name: 'flat' }),
      tf.layers.dense({ units: 3, name: 'head', kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 3 }) }),
    ],
  });
}

/** Functional graph with a branch: in -> enc_q, enc_v -> add -> out. */
export function functional(seed = 3): tf.LayersModel {
  const input = tf.input({ shape: [5], name: 'x' });
  const init = (s: number) => tf.initializers.glorotNormal({ seed: seed + s });
  const q = tf.layers.dense({ units: 8, activation: 'relu', name: 'enc_q_proj', kernelInitializer: init(0) }).apply(input) as tf.SymbolicTensor;
  const v = tf.layers.dense({ units: 8, name: 'enc_v_proj', kernelInitializer: init(1) }).apply(input) as tf.SymbolicTensor;
  const sum = tf.layers.add({ name: 'sum' }).apply([q, v]) as tf.SymbolicTensor;
  const drop = tf.layers.dropout({ rate: 0.1, name: 'drop' }).apply(sum) as tf.SymbolicTensor;
  const out = tf.layers.dense({ units: 2, name: 'out', kernelInitializer: init(2) }).apply(drop) as tf.SymbolicTensor;
  return tf.model({ inputs: input, outputs: out, name: 'branchy' });
}

/** Embedding(20, 6) over sequences of 4 ids -> flatten -> dense. */
export function embedder(seed = 4): tf.Sequential {
  return tf.sequential({
    layers: [
      tf.layers.embedding({ inputDim: 20, outputDim: 6, inputLength: 4, name: 'emb', embeddingsInitializer: tf.initializers.randomNormal({ seed }) }),
      tf.layers.flatten({ name: 'flat' }),
      tf.layers.dense({ units: 2, name: 'head', kernelInitializer: tf.initializers.glorotNormal({ seed: seed + 1 }) }),
    ],
  });
}

export function maxAbsDiff(a: tf.Tensor, b: tf.Tensor): number {
  return tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0]);
}

/** Values equal element for element (bitwise for floats except -0 vs 0). */
export function sameValues(a: tf.Tensor, b: tf.Tensor): boolean {
  const x = a.dataSync();
  const y = b.dataSync();
  return x.length === y.length && x.every((v, i) => Object.is(v, y[i]) || v === y[i]);
}

/** Run `fn` and return the error it throws (fails the test if it does not throw). */
export function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error, none was thrown');
}

export async function rejected(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection, none happened');
}

/**
 * Give B of every active adapter non-zero values, deterministically, and A too where it
 * starts at zero (Embedding), so every adapter makes a non-zero update.
 */
export function perturbAdapters(model: tf.LayersModel, seed = 7, scale = 0.3): void {
  let s = seed;
  for (const w of model.trainableWeights) {
    const zeroA = /lora_A/.test(w.originalName) && tf.tidy(() => tf.max(tf.abs(w.read())).dataSync()[0]) === 0;
    if (!/lora_B/.test(w.originalName) && !zeroA) continue;
    const t = tf.randomNormal(w.shape as number[], 0, scale, 'float32', s++);
    w.write(t);
    t.dispose();
  }
}

export function array2d(t: tf.Tensor): number[][] {
  const [r, c] = [t.shape[0], t.size / t.shape[0]];
  const d = Array.from(t.dataSync());
  return Array.from({ length: r }, (_, i) => d.slice(i * c, (i + 1) * c));
}
