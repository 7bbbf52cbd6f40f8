import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { runOnCpu } from './cpu-bridge';
import { composite, kernelConfig, Scratch } from './kernel-calls';
import { Overrides } from './overrides';

/**
 * Max-pooling gradients. tfjs-backend-wasm 4.22's MaxPoolGrad and
 * MaxPool3DGrad route the gradient to the wrong window element for many inputs
 * (windows whose values are all negative, zero ties at 'same' borders, and
 * more: measured errors of 50-150 % against finite differences).
 *
 * For the usual non-overlapping 2-D pooling (window == stride, e.g. 2x2/2)
 * the gradient is rebuilt from wasm kernels with the cpu kernel's exact
 * semantics (the first maximum of each window in row-major order gets dy):
 * lay each window out along a last axis, ArgMax, OneHot, scale by dy, and put
 * the windows back. Overlapping windows and 3-D pooling run the cpu kernel;
 * so does the MaxPool3D forward, which returns FLT_MIN for windows whose
 * values are all <= 0 (the 2-D forward is XNNPACK's and correct).
 */
export function installMaxPoolGrad(o: Overrides): void {
  const cpu2d = cpuKernel('MaxPoolGrad');
  const cpu3d = cpuKernel('MaxPool3DGrad');
  o.kernel(kernelConfig('MaxPoolGrad', 'wasm', (args) => {
    const { dy, input } = args.inputs;
    const a = args.attrs as { filterSize: number | [number, number]; strides: number | [number, number]; pad: 'valid' | 'same' | number; dimRoundingMode?: 'floor' | 'round' | 'ceil' };
    const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], a.filterSize, a.strides, 1, a.pad, a.dimRoundingMode);
    const tiled = info.filterHeight === info.strideHeight && info.filterWidth === info.strideWidth;
    if (!tiled) return runOnCpu(cpu2d, args);
    return composite(args.backend, 'wasm', (k) => tiledMaxPoolGrad(k, input, dy, info));
  }));
  o.kernel(kernelConfig('MaxPool3DGrad', 'wasm', (args) => runOnCpu(cpu3d, args)));
  const cpu3dForward = cpuKernel('MaxPool3D');
  o.kernel(kernelConfig('MaxPool3D', 'wasm', (args) => runOnCpu(cpu3dForward, args)));
}

function tiledMaxPoolGrad(k: Scratch, x: tf.TensorInfo, dy: tf.TensorInfo, info: tf.backend_util.Conv2DInfo): tf.TensorInfo {
  const { batchSize: B, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { filterHeight: KH, filterWidth: KW } = info;
  const { top, left } = info.padInfo;
  // Rows/columns of x covered by the window grid: [-top, OH*KH - top).
  const keptH = Math.min(H, OH * KH - top);
  const keptW = Math.min(W, OW * KW - left);
  const kept = k.slice(x, [0, 0, 0, 0], [B, keptH, keptW, C]);
  const grid = top > 0 || left > 0 || keptH + top < OH * KH || keptW + left < OW * KW
    ? k.run('PadV2', { x: kept }, { paddings: [[0, 0], [top, OH * KH - top - keptH], [left, OW * KW - left - keptW], [0, 0]], constantValue: -Infinity })
    : kept;
  const windowsLast = k.reshape(
    k.run('Transpose', { x: k.reshape(grid, [B, OH, KH, OW, KW, C]) }, { perm: [0, 1, 3, 5, 2, 4] }),
    [B, OH, OW, C, KH * KW],
  );
  const first = k.run('ArgMax', { x: windowsLast }, { axis: [4] });
  const mask = k.run('Cast', { x: k.run('OneHot', { indices: first }, { depth: KH * KW, onValue: 1, offValue: 0, dtype: 'int32' }) }, { dtype: 'float32' });
  const routed = k.run('Multiply', { a: mask, b: k.reshape(dy, [B, OH, OW, C, 1]) });
  const back = k.reshape(
    k.run('Transpose', { x: k.reshape(routed, [B, OH, OW, C, KH, KW]) }, { perm: [0, 1, 4, 2, 5, 3] }),
    [B, OH * KH, OW * KW, C],
  );
  const dx = k.slice(back, [0, top, left, 0], [B, keptH, keptW, C]);
  if (keptH === H && keptW === W) return dx;
  // Rows/columns past the last window get no gradient.
  return k.run('PadV2', { x: dx }, { paddings: [[0, 0], [0, H - keptH], [0, W - keptW], [0, 0]], constantValue: 0 });
}

function cpuKernel(name: string): tf.KernelConfig {
  const kernel = tf.getKernel(name, 'cpu');
  if (!kernel) throw new TapfitError(ErrorCodes.BACKEND, `wasm shim: cpu kernel '${name}' is not registered, so wasm cannot borrow it. Import '@tensorflow/tfjs' (the union package, which registers the cpu backend), version 4.22.`);
  return kernel;
}
