import * as tf from '@tensorflow/tfjs';

/*
 * The gradient of CropAndResize (tf.image.cropAndResize), which tfjs 4.22 does not
 * register: a region-of-interest crop could not train on any backend.
 *
 * Sampling position of crop pixel (y, x) of box (y1, x1, y2, x2) in an H x W image, as in
 * the forward kernels (tfjs's and TensorFlow's):
 *
 *   in_y = y1 (H - 1) + y (y2 - y1) (H - 1) / (cropH - 1)    (cropH > 1)
 *   in_y = (y1 + y2) (H - 1) / 2                              (cropH = 1)
 *
 * and the same for x; a position outside [0, H - 1] x [0, W - 1] takes the extrapolation
 * value, which does not depend on the image or the box (zero gradient). Bilinear:
 * value = T + (B - T) ly with T = tl + (tr - tl) lx, B = bl + (br - bl) lx, the four
 * corners around (in_y, in_x) and ly, lx the fractional parts.
 *
 * - image: each output's dy goes to the pixels it read, weighted as it read them (a
 *   scatter-add; the nearest pixel for 'nearest').
 * - boxes (bilinear): d value / d in_y = B - T and d value / d in_x =
 *   (1 - ly)(tr - tl) + ly (br - bl), times d in_y / d y1 = (H - 1)(1 - y / (cropH - 1)) and
 *   d in_y / d y2 = (H - 1) y / (cropH - 1) ((H - 1) / 2 each when cropH = 1), summed over
 *   the box's pixels and channels. 'nearest' is piecewise constant in the boxes: zero
 *   almost everywhere, so zero (TensorFlow returns the bilinear one for either method).
 *
 * The geometry depends on the boxes alone, which are small: it is computed here from
 * their values, and the image-sized work stays on the backend as gathers and scatters.
 */

interface CropAndResizeAttrs {
  cropSize: [number, number];
  method: 'bilinear' | 'nearest';
}

/** Per sampled position inside the image: where it reads and how, and its box-coordinate factors. */
interface Samples {
  /** Row of dy ([boxes * cropH * cropW, depth]) the position is. */
  rows: number[];
  box: number[];
  /** [batch, y, x] of the four corners (bilinear) or of the nearest pixel. */
  corners: number[][];
  /** The corners' weights, per position in the order of `corners`. */
  weights: number[];
  ly: number[];
  lx: number[];
  /** d in_y / d y1, d in_y / d y2, d in_x / d x1, d in_x / d x2. */
  dy1: number[];
  dy2: number[];
  dx1: number[];
  dx2: number[];
}

export const cropAndResizeGradConfig: tf.GradConfig = {
  kernelName: 'CropAndResize',
  inputsToSave: ['image', 'boxes', 'boxInd'],
  gradFunc: (dy, [image, boxes, boxInd], attrs) => {
    const { cropSize, method } = attrs as unknown as CropAndResizeAttrs;
    let geometry: Samples | null = null;
    const samples = () => (geometry ??= sampleGeometry(image.shape as number[], boxes.dataSync() as Float32Array, boxInd.dataSync() as Int32Array, cropSize, method));
    return {
      image: () => tf.tidy(() => imageGrad(dy as tf.Tensor4D, image, samples(), method)),
      boxes: () => tf.tidy(() => (method === 'bilinear' ? boxesGrad(dy as tf.Tensor4D, image, boxes.shape[0], samples()) : tf.zerosLike(boxes))),
      boxInd: () => tf.zerosLike(boxInd),
    };
  },
};

function sampleGeometry([batch, H, W]: number[], boxes: Float32Array, boxInd: Int32Array, [cropH, cropW]: [number, number], method: CropAndResizeAttrs['method']): Samples {
  const s: Samples = { rows: [], box: [], corners: [], weights: [], ly: [], lx: [], dy1: [], dy2: [], dx1: [], dx2: [] };
  const axis = (lo: number, hi: number, size: number, crop: number, i: number) => {
    const at = crop > 1 ? lo * (size - 1) + (i * (hi - lo) * (size - 1)) / (crop - 1) : 0.5 * (lo + hi) * (size - 1);
    const dLo = crop > 1 ? (size - 1) * (1 - i / (crop - 1)) : 0.5 * (size - 1);
    const dHi = crop > 1 ? ((size - 1) * i) / (crop - 1) : 0.5 * (size - 1);
    return { at, dLo, dHi, inside: at >= 0 && at <= size - 1 };
  };
  for (let b = 0; b < boxInd.length; b++) {
    const n = boxInd[b];
    // A box naming an image past the batch reads nothing (the forward kernels skip it).
    if (n < 0 || n >= batch) continue;
    const [y1, x1, y2, x2] = boxes.subarray(4 * b, 4 * b + 4);
    for (let y = 0; y < cropH; y++) {
      const ay = axis(y1, y2, H, cropH, y);
      if (!ay.inside) continue;
      for (let x = 0; x < cropW; x++) {
        const ax = axis(x1, x2, W, cropW, x);
        if (!ax.inside) continue;
        s.rows.push((b * cropH + y) * cropW + x);
        s.box.push(b);
        if (method === 'nearest') {
          s.corners.push([n, Math.round(ay.at), Math.round(ax.at)]);
          s.weights.push(1);
          continue;
        }
        const [top, left] = [Math.floor(ay.at), Math.floor(ax.at)];
        const [bottom, right] = [Math.ceil(ay.at), Math.ceil(ax.at)];
        const [ly, lx] = [ay.at - top, ax.at - left];
        s.corners.push([n, top, left], [n, top, right], [n, bottom, left], [n, bottom, right]);
        s.weights.push((1 - ly) * (1 - lx), (1 - ly) * lx, ly * (1 - lx), ly * lx);
        s.ly.push(ly);
        s.lx.push(lx);
        s.dy1.push(ay.dLo);
        s.dy2.push(ay.dHi);
        s.dx1.push(ax.dLo);
        s.dx2.push(ax.dHi);
      }
    }
  }
  return s;
}

/** dy rows [boxes * cropH * cropW, depth]. */
const dyRows = (dy: tf.Tensor4D) => tf.reshape(dy, [-1, dy.shape[3]]) as tf.Tensor2D;

function imageGrad(dy: tf.Tensor4D, image: tf.Tensor, s: Samples, method: CropAndResizeAttrs['method']): tf.Tensor {
  if (s.rows.length === 0) return tf.zerosLike(image);
  const perSample = method === 'nearest' ? 1 : 4;
  const rows = tf.tensor1d(s.rows.flatMap((r) => new Array<number>(perSample).fill(r)), 'int32');
  const updates = tf.mul(tf.gather(dyRows(dy), rows), tf.tensor2d(s.weights, [s.weights.length, 1]));
  return tf.scatterND(tf.tensor2d(s.corners, [s.corners.length, 3], 'int32'), updates, image.shape);
}

function boxesGrad(dy: tf.Tensor4D, image: tf.Tensor, numBoxes: number, s: Samples): tf.Tensor {
  const P = s.rows.length;
  if (P === 0) return tf.zeros([numBoxes, 4]);
  // The four corners' values, [P, depth] each.
  const values = tf.reshape(tf.gatherND(image, tf.tensor2d(s.corners, [4 * P, 3], 'int32')), [P, 4, -1]);
  const [tl, tr, bl, br] = tf.unstack(values, 1);
  const column = (v: number[]) => tf.tensor2d(v, [P, 1]);
  const [ly, lx] = [column(s.ly), column(s.lx)];
  const g = tf.gather(dyRows(dy), tf.tensor1d(s.rows, 'int32'));
  // d value / d in_y = B - T and d value / d in_x, each summed with dy over the channels.
  const top = tf.add(tl, tf.mul(tf.sub(tr, tl), lx));
  const bottom = tf.add(bl, tf.mul(tf.sub(br, bl), lx));
  const alongY = tf.sum(tf.mul(g, tf.sub(bottom, top)), 1);
  const alongX = tf.sum(tf.mul(g, tf.add(tf.mul(tf.sub(1, ly), tf.sub(tr, tl)), tf.mul(ly, tf.sub(br, bl)))), 1);
  const perSample = tf.stack([tf.mul(alongY, s.dy1), tf.mul(alongX, s.dx1), tf.mul(alongY, s.dy2), tf.mul(alongX, s.dx2)], 1);
  return tf.unsortedSegmentSum(perSample, tf.tensor1d(s.box, 'int32'), numBoxes);
}
