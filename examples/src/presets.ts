import * as tf from '@tensorflow/tfjs';

export type Normalization = 'none' | 'batchNorm';

/**
 * The demo's CNN: conv16-pool-conv32-pool-dense128-dense10 (logits), optionally with a
 * normalisation layer after each conv (BatchNorm here; plugins may swap it).
 */
export function mnistCnn(options: { norm?: Normalization; seed?: number } = {}): tf.Sequential {
  const init = (k: number) => tf.initializers.glorotUniform({ seed: (options.seed ?? 0) * 10 + k });
  const norm = (name: string): tf.layers.Layer[] => (options.norm === 'batchNorm' ? [tf.layers.batchNormalization({ name })] : []);
  return tf.sequential({
    name: 'mnist_cnn',
    layers: [
      tf.layers.conv2d({ name: 'conv1', inputShape: [28, 28, 1], filters: 16, kernelSize: 3, padding: 'same', kernelInitializer: init(1), useBias: options.norm !== 'batchNorm' }),
      ...norm('norm1'),
      tf.layers.reLU({ name: 'relu1' }),
      tf.layers.maxPooling2d({ name: 'pool1', poolSize: 2 }),
      tf.layers.conv2d({ name: 'conv2', filters: 32, kernelSize: 3, padding: 'same', kernelInitializer: init(2), useBias: options.norm !== 'batchNorm' }),
      ...norm('norm2'),
      tf.layers.reLU({ name: 'relu2' }),
      tf.layers.maxPooling2d({ name: 'pool2', poolSize: 2 }),
      tf.layers.flatten({ name: 'flatten' }),
      tf.layers.dense({ name: 'fc1', units: 128, activation: 'relu', kernelInitializer: init(3) }),
      tf.layers.dense({ name: 'logits', units: 10, kernelInitializer: init(4) }),
    ],
  });
}

/** A plain MLP on flat inputs: in-hidden...-out (logits). */
export function mlp(options: { inputs?: number; hidden?: number[]; outputs?: number; seed?: number } = {}): tf.Sequential {
  const hidden = options.hidden ?? [512, 512];
  const init = (k: number) => tf.initializers.glorotUniform({ seed: (options.seed ?? 0) * 10 + k });
  return tf.sequential({
    name: 'mlp',
    layers: [
      ...hidden.map((units, i) =>
        tf.layers.dense({ name: `fc${i + 1}`, units, activation: 'relu', kernelInitializer: init(i), ...(i === 0 ? { inputShape: [options.inputs ?? 784] } : {}) }),
      ),
      tf.layers.dense({ name: 'logits', units: options.outputs ?? 10, kernelInitializer: init(hidden.length) }),
    ],
  });
}

export const presets = {
  'mnist-cnn': (o: { norm?: Normalization; seed?: number }) => mnistCnn(o),
  'mnist-mlp': (o: { seed?: number; hidden?: number[] }) => mlp(o),
};
export type PresetName = keyof typeof presets;
