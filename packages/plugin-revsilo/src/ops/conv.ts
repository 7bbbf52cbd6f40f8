import * as tf from '@tensorflow/tfjs';

/**
 * A 1x1 (1x1x1) convolution on a channels-last tensor of any rank, as one matrix
 * product: `w` is `[Cin, Cout]`, `bias` `[Cout]`.
 */
export function pointwise(x: tf.Tensor, w: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const [cin, cout] = w.shape;
  const flat = tf.matMul(tf.reshape(x, [-1, cin]), w as tf.Tensor2D);
  return tf.reshape(bias ? tf.add(flat, bias) : flat, [...x.shape.slice(0, -1), cout]);
}

/** 'same' padding of one axis, as TF computes it: [before, after]. */
export function samePadding(size: number, kernel: number, stride: number): [number, number] {
  const out = Math.ceil(size / stride);
  const total = Math.max((out - 1) * stride + kernel - size, 0);
  return [Math.floor(total / 2), total - Math.floor(total / 2)];
}

/**
 * The depth slices a 'same' 3-D convolution reads for kernel depth `k`, as a batch of
 * 2-D images: `padded` `[N, D, H, W, C]` (already padded along D) -> `[N * Dout, H, W, C]`,
 * slice `d` being input depth `k + d * stride`. Sliced as `[N, D, H * W * C]`: wasm's Slice
 * and its gradient's Pad take a slow generic path on 5-D tensors (25 ms a call at 16^3).
 */
function depthSlices(padded: tf.Tensor, k: number, stride: number, depthOut: number): tf.Tensor {
  const [n, d, h, w, c] = padded.shape as number[];
  const flat = tf.reshape(padded, [n, d, h * w * c]);
  const want = depthOut * stride;
  let window = tf.slice(flat, [0, k, 0], [n, Math.min(want, d - k), h * w * c]);
  if (d - k < want) window = tf.pad(window, [[0, 0], [0, want - (d - k)], [0, 0]]);
  // Every stride-th depth: keep the first of each group of `stride`.
  const picked = stride === 1 ? window : tf.slice(tf.reshape(window, [n, depthOut, stride * h * w * c]), [0, 0, 0], [n, depthOut, h * w * c]);
  return tf.reshape(picked, [n * depthOut, h, w, c]);
}

/**
 * A 'same' 3-D convolution computed as the sum over kernel depth of 2-D convolutions of
 * depth slices (exact up to the order of the sums). TF.js has no depthwise 3-D op, and
 * its wasm `Conv3DBackpropInputV2` is wrong (core sends it to the cpu: slow); 2-D
 * convolutions train fast on wasm. `conv2d(slices, kd)` convolves the slices with the
 * kernel's depth-`kd` part and returns `[N * Dout, Hout, Wout, M]`.
 */
export function conv3dBySlices(x: tf.Tensor, kernelDepth: number, stride: number, conv2d: (slices: tf.Tensor, kd: number) => tf.Tensor): tf.Tensor {
  const [n, d, h, w, c] = x.shape as number[];
  const depthOut = Math.ceil(d / stride);
  const [before, after] = samePadding(d, kernelDepth, stride);
  const padded = before || after ? tf.reshape(tf.pad(tf.reshape(x, [n, d, h * w * c]), [[0, 0], [before, after], [0, 0]]), [n, d + before + after, h, w, c]) : x;
  let sum: tf.Tensor | undefined;
  for (let k = 0; k < kernelDepth; k++) {
    const y = conv2d(depthSlices(padded, k, stride, depthOut), k);
    sum = sum ? tf.add(sum, y) : y;
  }
  const [, ho, wo, m] = sum!.shape;
  return tf.reshape(sum!, [n, depthOut, ho, wo, m]);
}

/** How a depthwise 3-D convolution is computed (all exact; see DEPTHWISE_3D_DEFAULT). */
export type Depthwise3dMethod = 'slices' | 'blockDiagonal' | 'perChannel';
export const DEPTHWISE_3D_METHODS: readonly Depthwise3dMethod[] = ['slices', 'blockDiagonal', 'perChannel'];

/**
 * The default: on wasm, forward + both gradients of a 3x3x3 depthwise convolution on
 * [1, 16, 16, 16, 16] took 11-18 ms by depth slices against 350 ms as one conv3d with a
 * block-diagonal filter and 220 ms as per-channel conv3d (bench/results/revsilo.json,
 * 'depthwise3d', has the current figures).
 */
export const DEPTHWISE_3D_DEFAULT: Depthwise3dMethod = 'slices';

/** Depthwise 'same' 3-D convolution: x `[N, D, H, W, C]`, w `[k, k, k, C]`, stride in every spatial axis. */
export function depthwise3d(x: tf.Tensor, w: tf.Tensor, stride = 1, method: Depthwise3dMethod = DEPTHWISE_3D_DEFAULT): tf.Tensor {
  const [k, , , c] = w.shape;
  switch (method) {
    case 'slices':
      return conv3dBySlices(x, k, stride, (slices, kd) =>
        tf.depthwiseConv2d(slices as tf.Tensor4D, tf.reshape(tf.slice(w, [kd, 0, 0, 0], [1, k, k, c]), [k, k, c, 1]) as tf.Tensor4D, stride, 'same'),
      );
    case 'blockDiagonal': {
      // The [k, k, k, C] filter placed on the diagonal of a [k, k, k, C, C] one: C times the work.
      const filter = tf.mul(tf.reshape(w, [k, k, k, c, 1]), tf.reshape(tf.eye(c), [1, 1, 1, c, c]));
      return tf.conv3d(x as tf.Tensor5D, filter as tf.Tensor5D, stride, 'same');
    }
    case 'perChannel': {
      const xs = tf.split(x, c, 4);
      const ws = tf.split(w, c, 3);
      return tf.concat(xs.map((xc, i) => tf.conv3d(xc as tf.Tensor5D, tf.reshape(ws[i], [k, k, k, 1, 1]) as tf.Tensor5D, stride, 'same')), 4);
    }
  }
}

/** A full 'same' 3-D convolution by depth slices: x `[N, D, H, W, Cin]`, w `[k, k, k, Cin, Cout]`. */
export function conv3d(x: tf.Tensor, w: tf.Tensor, stride = 1): tf.Tensor {
  const [k, , , cin, cout] = w.shape;
  return conv3dBySlices(x, k, stride, (slices, kd) =>
    tf.conv2d(slices as tf.Tensor4D, tf.reshape(tf.slice(w, [kd, 0, 0, 0, 0], [1, k, k, cin, cout]), [k, k, cin, cout]) as tf.Tensor4D, stride, 'same'),
  );
}

/**
 * A 2x2x2 transposed convolution with stride 2 (each voxel writes its own 2x2x2 block,
 * so it is one matrix product and a rearrangement): x `[N, D, H, W, Cin]`, w `[Cin, 8 * Cout]`
 * (channel blocks ordered depth, height, width) -> `[N, 2D, 2H, 2W, Cout]`.
 */
export function upsampleConv3d(x: tf.Tensor, w: tf.Tensor, bias?: tf.Tensor): tf.Tensor {
  const [n, d, h, wd] = x.shape;
  const cout = (w.shape as number[])[1] / 8;
  const y = pointwise(x, w); // [N, D, H, W, 8 Cout]
  // Depth first (rank <= 6 keeps every backend's transpose happy), then height and width.
  const depth = tf.reshape(tf.transpose(tf.reshape(y, [n * d, h * wd, 2, 4 * cout]), [0, 2, 1, 3]), [n * d * 2, h, wd, 2, 2, cout]);
  const out = tf.reshape(tf.transpose(depth, [0, 1, 3, 2, 4, 5]), [n, 2 * d, 2 * h, 2 * wd, cout]);
  return bias ? tf.add(out, bias) : out;
}

/** Space-to-depth by `b` (2-D, channels-last): [N, H, W, C] -> [N, H/b, W/b, b*b*C], blocks ordered (row, column, channel). */
export function spaceToDepth(x: tf.Tensor, b: number): tf.Tensor {
  const [n, h, w, c] = x.shape;
  return tf.reshape(tf.transpose(tf.reshape(x, [n, h / b, b, w / b, b, c]), [0, 1, 3, 2, 4, 5]), [n, h / b, w / b, b * b * c]);
}

/** The inverse of spaceToDepth. */
export function depthToSpace(x: tf.Tensor, b: number): tf.Tensor {
  const [n, h, w, cb] = x.shape;
  const c = cb / (b * b);
  return tf.reshape(tf.transpose(tf.reshape(x, [n, h, w, b, b, c]), [0, 1, 3, 2, 4, 5]), [n, h * b, w * b, c]);
}

/**
 * Bilinear upsampling by an integer factor, with TF.js's default sampling (no half-pixel
 * centres). TF.js 4.22's ResizeBilinearGrad ignores `halfPixelCenters` on cpu and wasm, so
 * PyTorch's sampling (align_corners=False) would train with a wrong gradient; this one's
 * gradient is checked against finite differences in the tests.
 */
export function upsampleBilinear(x: tf.Tensor, factor: number): tf.Tensor {
  if (factor === 1) return x;
  const [, h, w] = x.shape;
  return tf.image.resizeBilinear(x as tf.Tensor4D, [h * factor, w * factor], false, false);
}
