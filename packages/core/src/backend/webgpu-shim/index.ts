import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';
import { installMissingKernelErrors } from '../missing-kernel';
import { installGradientFixes } from '../wasm-shim';
import { installCumulativeAxis } from '../wasm-shim/cumulative-axis';
import { installEinsum } from '../wasm-shim/einsum';
import { Overrides } from '../wasm-shim/overrides';
import { installStridedSliceShrinkFix } from '../wasm-shim/strided-slice-shrink';
import { installWebgpuCpuBridge, WEBGPU_BRIDGED_TO_CPU, WEBGPU_WRONG, WEBGPU_WRONG_FOR_INT32 } from './cpu-bridge';
import { watchGpuErrors } from './gpu-errors';
import { installAddNGroups } from './add-n';
import { installCumulativeKernels, WEBGPU_CUMULATIVE_KERNELS } from './cumulative';
import { installFloatCast } from './float-cast';
import { installHighRankKernels, WEBGPU_HIGH_RANK_KERNELS } from './high-rank';
import { installResizeNearestGradHalfPixel } from './resize-nearest-grad';
import { installSyncReads } from './sync-read';

export { WEBGPU_BRIDGED_TO_CPU } from './cpu-bridge';
export { WEBGPU_HIGH_RANK_KERNELS } from './high-rank';
export { WEBGPU_CUMULATIVE_KERNELS } from './cumulative';

let shim: { overrides: Overrides; backend: tf.KernelBackend } | null = null;
/** The backend instance whose reads and error reports are set up (they stay for its lifetime). */
let prepared: tf.KernelBackend | null = null;

/**
 * The webgpu training shim, installed by `selectBackend('webgpu')` on an
 * initialised 'webgpu' backend (tfjs-backend-webgpu 4.22):
 *
 * - synchronous reads in Node (dataSync, arraySync; sync-read.ts)
 * - work the GPU rejects (it leaves garbage and throws nothing) fails the next read (gpu-errors.ts)
 * - PadV2, MirrorPad, Reverse, Select at rank 5-6 (wrong or refused stock), as rank-3 passes
 * - Cumsum, Cumprod: reverse (wrong at any rank: a shader cache bug) and rank 5-6; negative
 *   axes (as on cpu and wasm)
 * - Einsum as one batched product (stock drops operands and sums for some equations, as on cpu)
 * - Cast of bool and int32 to float32 writes float32 values (stock shares the integer buffer,
 *   which the rank-3 transpose's shader cannot read: masks before RNNs failed)
 * - ResizeNearestNeighborGrad with halfPixelCenters (stock ignores it)
 * - AddN of more tensors than a shader may bind (9 on a default device: the GPU rejected it), in groups
 * - cpu bridge for the kernels webgpu lacks (string, sparse and ragged ops, Unique, ...) and
 *   for int32 UnsortedSegmentSum (stock stores float bits), Transform and CropAndResize
 *   (wrong pixels)
 * - StridedSlice with a shrunk axis and another axis strided (wrong elements, as on cpu and wasm)
 *
 * The avg-pool border fix of `installGradientFixes` applies on webgpu too.
 * It registers kernels for 'webgpu' only. Idempotent.
 */
export async function installWebgpuShim(): Promise<void> {
  installGradientFixes();
  installMissingKernelErrors();
  const backend = tf.findBackend('webgpu');
  if (!backend) throw new TapfitError(ErrorCodes.BACKEND, "webgpu shim: no initialised 'webgpu' backend; call selectBackend('webgpu') instead of installing the shim yourself.");
  if (prepared !== backend) {
    const undo: Array<() => void> = [];
    try {
      undo.push(watchGpuErrors(backend));
      // A browser reads through OffscreenCanvas; Node has none.
      if (typeof (globalThis as { OffscreenCanvas?: unknown }).OffscreenCanvas === 'undefined') {
        undo.push(installSyncReads(backend));
        await checkSyncRead();
      }
    } catch (err) {
      for (const u of undo.reverse()) u();
      throw err;
    }
    prepared = backend;
  }
  if (shim?.backend === backend) return;
  uninstallWebgpuShim();
  const overrides = new Overrides();
  try {
    installHighRankKernels(overrides);
    installCumulativeKernels(overrides);
    installCumulativeAxis(overrides, ['webgpu']);
    installEinsum(overrides, ['webgpu']);
    installResizeNearestGradHalfPixel(overrides);
    installWebgpuCpuBridge(overrides);
    installStridedSliceShrinkFix(overrides, ['webgpu']);
    installFloatCast(overrides);
    installAddNGroups(overrides);
  } catch (err) {
    overrides.restore();
    throw err;
  }
  shim = { overrides, backend };
}

/** Put the stock webgpu kernels back (tests compare both); synchronous reads stay. */
export function uninstallWebgpuShim(): void {
  shim?.overrides.restore();
  shim = null;
}

export function webgpuShimInstalled(): boolean {
  return shim != null;
}

/** Kernels the shim registers for webgpu, for reports and tests. */
export const WEBGPU_SHIM_KERNELS: readonly string[] = [...WEBGPU_HIGH_RANK_KERNELS, ...WEBGPU_CUMULATIVE_KERNELS, 'ResizeNearestNeighborGrad', 'Einsum', 'Cast', 'AddN', ...WEBGPU_WRONG, ...WEBGPU_WRONG_FOR_INT32, ...WEBGPU_BRIDGED_TO_CPU];

/**
 * One read right after initialisation proves the synchronous path works. Dawn may
 * still have device creation's completion queued on the event loop; while it is,
 * a synchronous read cannot run, so let the loop turn and try again.
 */
async function checkSyncRead(): Promise<void> {
  // Large enough that webgpu runs it on the GPU (smaller inputs are computed on the host).
  const n = 4096;
  const probe = tf.tidy(() => tf.add(tf.range(0, n), tf.scalar(1)));
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const got = probe.dataSync();
        const wrong = got.findIndex((v, i) => v !== i + 1);
        if (got.length !== n || wrong >= 0) {
          throw new TapfitError(ErrorCodes.BACKEND, `backend 'webgpu': a synchronous read returned wrong values (element ${wrong}: ${got[wrong]} instead of ${wrong + 1}); this 'webgpu' package is not the 0.6.x the shim is written for. Install webgpu@0.6, or choose another backend.`);
        }
        return;
      } catch (err) {
        if (attempt >= 100 || !(err instanceof TapfitError) || !/another asynchronous WebGPU operation/.test(err.message)) throw err;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  } finally {
    probe.dispose();
  }
}
