import * as tf from '@tensorflow/tfjs';
import { runKernel } from '../engine-internals';
import { cropAndResizeGradConfig } from './crop-and-resize-grad';
import { cumprodGradConfig } from './cumprod-grad';
import { einsumGradConfig } from './einsum-grad';
import { Overrides } from './overrides';
import { SECOND_ORDER_GRADIENTS } from './second-order-gradients';
import { flatPositions, stridedSliceInfo, type StridedSliceAttrs } from './strided-slice-shrink';

/*
 * Gradients stock tfjs 4.22 does not register, so a tape through these ops throws
 * "gradient function not found" on every backend:
 *
 * - comparisons and logical ops (Greater, Less, LessEqual, Equal, NotEqual, Logical*):
 *   their outputs are not differentiable, so their inputs get zeros, as for GreaterEqual,
 *   which tfjs does register. Without them `tf.where(tf.greater(x, 0), a, b)` with x on the
 *   tape, and tfjs-layers' ThresholdedReLU, cannot train.
 * - StridedSlice: dy goes back to the positions the slice read (a scatter).
 * - GatherNd: dy is scattered back to the gathered positions (summed where they repeat).
 * - ScatterNd: the updates get dy at their positions.
 * - TensorScatterUpdate: the tensor gets dy except where it was overwritten, the updates
 *   get dy there.
 * - TopK: the values' dy goes back to the positions they were taken from.
 * - DepthToSpace (NHWC; tfjs has no other layout on cpu): dy rearranged back, the inverse
 *   permutation (sub-pixel convolutions upsample with it).
 * - FloorMod (tf.mod): a - floor(a / b) b, so dy towards a and -floor(a / b) dy towards b
 *   (summed over broadcast axes).
 * - SparseSegmentSum and SparseSegmentMean: each segment's dy goes back to the data rows
 *   it summed (divided by the segment's count for the mean).
 * - Conv3DBackpropInputV2 (a 3-D transposed convolution, tfjs-layers' Conv3DTranspose): as
 *   tfjs does for 2-D, a convolution of ddx towards dy and a filter gradient towards the filter.
 * - Cumprod, Einsum, CropAndResize: in their own files; the gradients of gradient kernels
 *   (EluGrad, DepthwiseConv2dNativeBackpropInput, MaxPoolGrad, AvgPoolGrad), for a
 *   gradient of a gradient, in second-order-gradients.ts.
 * A gradient tfjs registers itself is left alone.
 */

const NOT_DIFFERENTIABLE_BINARY = ['Greater', 'Less', 'LessEqual', 'Equal', 'NotEqual', 'LogicalAnd', 'LogicalOr', 'LogicalXor'];

export function installMissingGradients(o: Overrides): void {
  const add = (config: tf.GradConfig) => {
    if (!tf.getGradient(config.kernelName)) o.gradient(config);
  };
  for (const kernelName of NOT_DIFFERENTIABLE_BINARY) {
    add({ kernelName, inputsToSave: ['a', 'b'], gradFunc: (_dy, [a, b]) => ({ a: () => tf.zeros(a.shape), b: () => tf.zeros(b.shape) }) });
  }
  add({ kernelName: 'LogicalNot', inputsToSave: ['x'], gradFunc: (_dy, [x]) => ({ x: () => tf.zeros(x.shape) }) });
  add({
    kernelName: 'StridedSlice',
    inputsToSave: ['x'],
    gradFunc: (dy, [x], attrs) => ({ x: () => tf.tidy(() => stridedSliceAdjoint(dy as tf.Tensor, x, attrs as unknown as StridedSliceAttrs)) }),
  });
  add({
    kernelName: 'GatherNd',
    inputsToSave: ['params', 'indices'],
    gradFunc: (dy, [params, indices]) => ({
      params: () => tf.scatterND(indices, dy as tf.Tensor, params.shape),
      indices: () => tf.zerosLike(indices),
    }),
  });
  add({
    kernelName: 'ScatterNd',
    inputsToSave: ['indices'],
    gradFunc: (dy, [indices]) => ({ indices: () => tf.zerosLike(indices), updates: () => tf.gatherND(dy as tf.Tensor, indices) }),
  });
  add({
    kernelName: 'TensorScatterUpdate',
    inputsToSave: ['indices', 'updates'],
    gradFunc: (dy, [indices, updates]) => ({
      tensor: () => tf.tensorScatterUpdate(dy as tf.Tensor, indices, tf.zerosLike(updates)),
      indices: () => tf.zerosLike(indices),
      updates: () => tf.gatherND(dy as tf.Tensor, indices),
    }),
  });
  add({
    kernelName: 'TopK',
    inputsToSave: ['x'],
    outputsToSave: [false, true],
    gradFunc: (dy, [x, indices]) => ({ x: () => tf.tidy(() => topKAdjoint((dy as tf.Tensor[])[0], x, indices)) }),
  });
  add({
    kernelName: 'FloorMod',
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, [a, b]) => ({
      a: () => tf.tidy(() => sumToShape(dy as tf.Tensor, a.shape)),
      b: () => tf.tidy(() => sumToShape(tf.mul(dy as tf.Tensor, tf.neg(tf.floor(tf.div(a, b)))), b.shape)),
    }),
  });
  for (const kernelName of ['SparseSegmentSum', 'SparseSegmentMean']) {
    add({
      kernelName,
      inputsToSave: ['data', 'indices', 'segmentIds'],
      gradFunc: (dy, [data, indices, segmentIds]) => ({
        data: () => tf.tidy(() => sparseSegmentAdjoint(dy as tf.Tensor, data, indices, segmentIds as tf.Tensor1D, kernelName === 'SparseSegmentMean')),
        indices: () => tf.zerosLike(indices),
        segmentIds: () => tf.zerosLike(segmentIds),
      }),
    });
  }
  add({
    kernelName: 'Conv3DBackpropInputV2',
    inputsToSave: ['dy', 'filter'],
    gradFunc: (ddx, [dy, filter], attrs) => {
      const { strides, pad } = attrs as unknown as { strides: [number, number, number] | number; pad: 'valid' | 'same' };
      return {
        dy: () => tf.conv3d(ddx as tf.Tensor5D, filter as tf.Tensor5D, strides, pad),
        filter: () => runKernel('Conv3DBackpropFilterV2', { x: ddx as tf.Tensor, dy }, { strides, pad, filterShape: filter.shape }) as tf.Tensor,
      };
    },
  });
  add(cumprodGradConfig);
  add(einsumGradConfig);
  add(cropAndResizeGradConfig);
  for (const config of SECOND_ORDER_GRADIENTS) add(config);
  add({
    kernelName: 'DepthToSpace',
    gradFunc: (dy, _saved, attrs) => ({ x: () => tf.tidy(() => depthToSpaceAdjoint(dy as tf.Tensor4D, (attrs as { blockSize: number }).blockSize)) }),
  });
}

/** t (of a broadcast result's shape) summed down to `shape`: over the axes broadcasting added or stretched. */
function sumToShape(t: tf.Tensor, shape: number[]): tf.Tensor {
  const axes = tf.backend_util.getReductionAxes(shape, t.shape);
  return tf.reshape(axes.length > 0 ? tf.sum(t, axes) : t, shape);
}

/** d data of a sparse segment sum (or mean): each entry's segment dy added to the data row it read. */
function sparseSegmentAdjoint(dy: tf.Tensor, data: tf.Tensor, indices: tf.Tensor, segmentIds: tf.Tensor1D, mean: boolean): tf.Tensor {
  let rows = tf.gather(dy, segmentIds);
  if (mean) {
    const counts = tf.unsortedSegmentSum(tf.onesLike(segmentIds).toFloat(), segmentIds, dy.shape[0]);
    rows = tf.div(rows, tf.reshape(tf.gather(counts, segmentIds), [-1, ...dy.shape.slice(1).map(() => 1)]));
  }
  return tf.unsortedSegmentSum(rows, indices as tf.Tensor1D, data.shape[0]);
}

/** dx of top-k: zeros of x's shape with the values' dy at the positions `indices` name along the last axis. */
function topKAdjoint(dValues: tf.Tensor, x: tf.Tensor, indices: tf.Tensor): tf.Tensor {
  const n = x.shape[x.shape.length - 1];
  const k = indices.shape[indices.shape.length - 1];
  const rows = x.size / n;
  if (rows * k === 0) return tf.zerosLike(x);
  const starts = tf.mul(tf.range(0, rows, 1, 'int32'), tf.scalar(n, 'int32')).reshape([rows, 1]);
  const positions = tf.add(tf.reshape(indices, [rows, k]), starts).reshape([rows * k, 1]);
  return tf.reshape(tf.scatterND(positions, tf.reshape(dValues, [rows * k]), [x.size]), x.shape);
}

/** dx of depthToSpace (NHWC): each block of b x b pixels goes back into the channels it came from. */
function depthToSpaceAdjoint(dy: tf.Tensor4D, b: number): tf.Tensor4D {
  const [N, HB, WB, C] = dy.shape;
  const blocks = tf.reshape(dy, [N, HB / b, b, WB / b, b, C]);
  return tf.reshape(tf.transpose(blocks, [0, 1, 3, 2, 4, 5]), [N, HB / b, WB / b, b * b * C]);
}

/** dx of a strided slice: zeros of x's shape with dy at the positions the slice read. */
function stridedSliceAdjoint(dy: tf.Tensor, x: tf.Tensor, a: StridedSliceAttrs): tf.Tensor {
  const info = stridedSliceInfo(x.shape, a);
  const positions = flatPositions(x.shape, info.begin, info.end, info.strides);
  if (positions.length === 0) return tf.zerosLike(x);
  const flat = tf.scatterND(tf.tensor2d(positions, [positions.length, 1], 'int32'), tf.reshape(dy, [positions.length]), [x.size]);
  return tf.reshape(flat, x.shape);
}
