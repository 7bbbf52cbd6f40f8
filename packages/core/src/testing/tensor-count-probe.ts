import * as tf from '@tensorflow/tfjs';
import { Stage } from '../hooks/order';
import type { TapfitPlugin } from '../plugin/types';

/**
 * A plugin that records the live tensor count after every step (batchEnd, last stage, after
 * the plugin under test). Comparing counts only between fits misses a plugin that keeps a
 * tensor per step and frees them at fitEnd: unbounded growth inside every fit.
 */
export function tensorCountProbe(): { plugin: TapfitPlugin; counts: number[] } {
  const counts: number[] = [];
  const plugin: TapfitPlugin = {
    name: 'conformance-tensor-count',
    core: '*',
    apply: ({ hooks }) => hooks.batchEnd.tap({ stage: Stage.LAST }, () => void counts.push(tf.memory().numTensors)),
  };
  return { plugin, counts };
}

/**
 * Where the count first rises above its value after `warmup` steps (which lets a plugin
 * build state lazily), or undefined when it stays flat.
 */
export function growthAfterWarmup(counts: readonly number[], warmup: number): { from: number; to: number; step: number } | undefined {
  const settled = counts[warmup - 1];
  for (let i = warmup; i < counts.length; i++) {
    if (counts[i] > settled) return { from: settled, to: counts[i], step: i + 1 };
  }
  return undefined;
}
