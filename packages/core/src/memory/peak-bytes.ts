import * as tf from '@tensorflow/tfjs';
import { wrapRunKernelFunc } from '../backend/engine-internals';

/** The peak of live tensor bytes over a stretch of work (a training step), read and restarted with `take`. */
export interface PeakBytesWatch {
  /** The largest `tf.memory().numBytes` at any kernel's end (or at the last `take`) since the last `take`; restarts the watch. */
  take(): number;
  /** Stop watching (watches stop in the reverse order of starting). */
  stop(): void;
}

/**
 * Watches the live tensor bytes (TF.js's accounting, as `tf.memory().numBytes`) at the end
 * of every kernel, for a per-step peak without `tf.profile` (which needs the step inside
 * its callback). Costs one `tf.memory()` per kernel while it runs: for reports, not for
 * timing runs.
 */
export function watchPeakBytes(): PeakBytesWatch {
  let peak = tf.memory().numBytes;
  const unwrap = wrapRunKernelFunc((runKernelFunc) => (params) => {
    const out = runKernelFunc(params);
    peak = Math.max(peak, tf.memory().numBytes);
    return out;
  });
  return {
    take() {
      const now = tf.memory().numBytes;
      const result = Math.max(peak, now);
      peak = now;
      return result;
    },
    stop: unwrap,
  };
}
