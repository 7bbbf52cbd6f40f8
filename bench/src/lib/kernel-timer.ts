import * as tf from '@tensorflow/tfjs';

/** Where a kernel ran within a training step. */
export type Phase = 'forward' | 'backward' | 'update' | 'other';

/** One kernel call as the timer saw it: self time (nested kernels' time taken out). */
export interface KernelCall {
  name: string;
  phase: Phase;
  /** The outermost kernel this call ran inside (itself when not nested), with its attributes. */
  outer: string;
  outerAttrs: Record<string, unknown>;
  nested: boolean;
  selfMs: number;
  /** Self time in CPU time of the process (all its threads), which a busy machine inflates less. */
  selfCpuMs: number;
  /** Multiply-adds x 2 of a matMul or convolution (0 for other kernels). */
  flops: number;
}

interface EngineScopes {
  state: { scopeStack: Array<{ name?: string }> };
}

/**
 * Times every kernel of one backend by wrapping the registered kernel functions in
 * place (nested composite calls included, since composites look their kernels up in
 * the same registry) and, while on, the backend's readSync (the host copies). The phase
 * comes from `phase()`, except that anything inside the engine's 'backward' scope (the
 * backward pass of tf.grads / variableGrads) is 'backward'. `stop()` puts everything back.
 */
export class KernelTimer {
  readonly calls: KernelCall[] = [];
  hostReadMs = 0;
  hostReadCpuMs = 0;
  hostReads = 0;
  private readonly undo: Array<() => void> = [];
  private readonly stack: Array<{ childMs: number; childCpuMs: number; name: string; attrs: Record<string, unknown> }> = [];
  recording = false;

  constructor(
    readonly backendName: string,
    private readonly phase: () => Phase,
  ) {
    for (const config of tf.getKernelsForBackend(backendName)) this.wrap(config);
    const backend = tf.findBackend(backendName) as unknown as { readSync(dataId: tf.DataId): unknown };
    const readSync = backend.readSync;
    backend.readSync = (dataId: tf.DataId) => {
      const c0 = cpuNow();
      const t0 = performance.now();
      try {
        return readSync.call(backend, dataId);
      } finally {
        if (this.recording) {
          this.hostReadMs += performance.now() - t0;
          this.hostReadCpuMs += cpuNow() - c0;
          this.hostReads++;
        }
      }
    };
    this.undo.push(() => {
      backend.readSync = readSync;
    });
  }

  private wrap(config: tf.KernelConfig): void {
    const original = config.kernelFunc;
    const timer = this;
    const mutable = config as { kernelFunc: tf.KernelFunc };
    mutable.kernelFunc = function timed(args) {
      const attrs = (args.attrs ?? {}) as Record<string, unknown>;
      const frame = { childMs: 0, childCpuMs: 0, name: config.kernelName, attrs };
      timer.stack.push(frame);
      const c0 = cpuNow();
      const t0 = performance.now();
      try {
        return original(args);
      } finally {
        const ms = performance.now() - t0;
        const cpuMs = cpuNow() - c0;
        timer.stack.pop();
        const parent = timer.stack[timer.stack.length - 1];
        if (parent) {
          parent.childMs += ms;
          parent.childCpuMs += cpuMs;
        }
        if (timer.recording) {
          const outer = timer.stack[0] ?? frame;
          timer.calls.push({
            name: config.kernelName,
            phase: timer.currentPhase(),
            outer: outer.name,
            outerAttrs: outer.attrs,
            nested: timer.stack.length > 0,
            selfMs: ms - frame.childMs,
            selfCpuMs: cpuMs - frame.childCpuMs,
            flops: flopsOf(config.kernelName, args.inputs as Record<string, tf.TensorInfo>, attrs),
          });
        }
      }
    };
    this.undo.push(() => {
      mutable.kernelFunc = original;
    });
  }

  private currentPhase(): Phase {
    const scopes = (tf.engine() as unknown as EngineScopes).state.scopeStack;
    return scopes.some((s) => s.name === 'backward') ? 'backward' : this.phase();
  }

  stop(): void {
    while (this.undo.length) this.undo.pop()!();
  }
}

/** CPU time of the process so far, in ms. */
export function cpuNow(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/** 2 x multiply-adds of the products and convolutions, from their shapes. */
function flopsOf(name: string, inputs: Record<string, tf.TensorInfo>, attrs: Record<string, unknown>): number {
  if (name === 'BatchMatMul' || name === '_FusedMatMul') {
    const { a, b } = inputs;
    if (!a || !b) return 0;
    const [ar, ac] = a.shape.slice(-2);
    const bc = attrs.transposeB ? b.shape[b.shape.length - 2] : b.shape[b.shape.length - 1];
    const batch = Math.max(tf.util.sizeFromShape(a.shape.slice(0, -2)), tf.util.sizeFromShape(b.shape.slice(0, -2)));
    return 2 * batch * (attrs.transposeA ? ac : ar) * (attrs.transposeA ? ar : ac) * bc;
  }
  if (name === 'Conv2D' || name === 'FusedConv2D') {
    const { x, filter } = inputs;
    if (!x || !filter) return 0;
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], attrs.strides as number, attrs.dilations as number, attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined);
    return 2 * info.batchSize * info.outHeight * info.outWidth * info.filterHeight * info.filterWidth * info.inChannels * info.outChannels;
  }
  return 0;
}
