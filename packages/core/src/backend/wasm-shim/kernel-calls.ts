import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../../errors';

/**
 * Composite kernels are built from other kernels of the same backend, called
 * directly (no engine, no tape, no tracking), the way tfjs's own backends do it.
 * `Scratch` remembers every intermediate so that nothing leaks, even when a call
 * throws (for example the memory guard refusing an allocation).
 */
export class Scratch {
  private readonly made: tf.TensorInfo[] = [];

  constructor(
    readonly backend: tf.KernelBackend,
    readonly backendName: string,
  ) {}

  /** Run kernel `name` of this backend; the result is freed by `dispose` unless it is the value returned. */
  run(name: string, inputs: Record<string, tf.TensorInfo>, attrs: object = {}): tf.TensorInfo {
    const kernel = tf.getKernel(name, this.backendName);
    if (kernel == null) throw new TapfitError(ErrorCodes.BACKEND, `${this.backendName} shim: a composite kernel needs kernel '${name}', which is not registered on backend '${this.backendName}'. Install @tensorflow/tfjs and @tensorflow/tfjs-backend-${this.backendName} 4.22 (the same version), or uninstall the shim to use the stock kernels.`);
    const out = kernel.kernelFunc({ inputs, attrs: attrs as tf.NamedAttrMap, backend: this.backend }) as tf.TensorInfo;
    this.made.push(out);
    return out;
  }

  /** Reshape that is free when the shape already matches. */
  reshape(x: tf.TensorInfo, shape: number[]): tf.TensorInfo {
    return sameShape(x.shape, shape) ? x : this.run('Reshape', { x }, { shape });
  }

  /** Slice that is free when nothing is cut. */
  slice(x: tf.TensorInfo, begin: number[], size: number[]): tf.TensorInfo {
    const whole = begin.every((b) => b === 0) && sameShape(x.shape, size);
    return whole ? x : this.run('Slice', { x }, { begin, size });
  }

  /** A tensor made outside `run` (e.g. a kernel's own output), freed with the rest. */
  track(t: tf.TensorInfo): tf.TensorInfo {
    this.made.push(t);
    return t;
  }

  /** A float32 scalar on this backend (an operand of binary kernels), freed with the rest. */
  scalar(value: number): tf.TensorInfo {
    const t: tf.TensorInfo = { dataId: this.backend.write(new Float32Array([value]), [], 'float32'), shape: [], dtype: 'float32' };
    this.made.push(t);
    return t;
  }

  dispose(keep?: tf.TensorInfo): void {
    for (const t of this.made) if (t !== keep) this.backend.disposeData(t.dataId);
    this.made.length = 0;
  }
}

/** Build a single-output kernel from other kernels; intermediates are always freed. */
export function composite(
  backend: tf.KernelBackend,
  backendName: string,
  build: (k: Scratch) => tf.TensorInfo,
): tf.TensorInfo {
  const k = new Scratch(backend, backendName);
  let out: tf.TensorInfo | undefined;
  try {
    out = build(k);
    return out;
  } finally {
    k.dispose(out);
  }
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Zero-insertion ("stride dilation") of an NHWC tensor: [B,H,W,C] ->
 * [B,H*sh,W*sw,C] with the input at every sh-th row and sw-th column. The
 * trailing sh-1 / sw-1 zeros are kept; callers account for them in padding.
 */
export function insertStrideZeros(k: Scratch, x: tf.TensorInfo, sh: number, sw: number): tf.TensorInfo {
  if (sh === 1 && sw === 1) return x;
  const [B, H, W, C] = x.shape;
  const spread = k.reshape(x, [B, H, 1, W, 1, C]);
  const padded = k.run('PadV2', { x: spread }, {
    paddings: [[0, 0], [0, 0], [0, sh - 1], [0, 0], [0, sw - 1], [0, 0]],
    constantValue: 0,
  });
  return k.reshape(padded, [B, H * sh, W * sw, C]);
}

/**
 * "Full" correlation padding that turns a forward conv's adjoint into a plain
 * stride-1 conv: input of length `len` (after zero-insertion), effective
 * filter `eff`, forward pad `before`, wanted output length `out`. Negative
 * amounts (possible with explicit forward padding) become a crop of the result.
 */
export function adjointPadding(len: number, eff: number, before: number, out: number): { pad: [number, number]; crop: number } {
  const padBefore = eff - 1 - before;
  const padAfter = out + eff - 1 - padBefore - len;
  return { pad: [Math.max(0, padBefore), Math.max(0, padAfter)], crop: Math.max(0, -padBefore) };
}

/** Runs a registered kernel (one this one replaces, or the same kernel on another path) with a composite's arguments. */
export function callKernel(kernel: tf.KernelConfig, args: Parameters<KernelImpl>[0]): tf.TensorInfo {
  return kernel.kernelFunc({ ...args, attrs: args.attrs as tf.NamedAttrMap }) as tf.TensorInfo;
}

/** A kernel implementation with the types tfjs's KernelFunc leaves open. */
export type KernelImpl = (args: {
  inputs: Record<string, tf.TensorInfo>;
  attrs: Record<string, unknown>;
  backend: tf.KernelBackend;
}) => tf.TensorInfo | tf.TensorInfo[];

export function kernelConfig(kernelName: string, backendName: string, impl: KernelImpl): tf.KernelConfig {
  return { kernelName, backendName, kernelFunc: impl as unknown as tf.KernelFunc };
}

/** The `pad` argument of tfjs's conv helpers. */
export type ConvPad = Parameters<typeof tf.backend_util.computeConv2DInfo>[4];
