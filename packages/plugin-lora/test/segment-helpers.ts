import * as tf from '@tensorflow/tfjs';
import { modelVariables, readParam, type Segment, segmentModel, type TrainableModel } from '@tapfit/core';

/** A hand-written dense segment, y = act(x·W + b), reading W and b through readParam. */
export function denseSegment(name: string, w: tf.Variable, b: tf.Variable, activation: 'tanh' | 'linear' = 'linear'): Segment {
  return {
    name,
    params: [w, b],
    forward: ([x], ctx) => {
      const y = tf.add(tf.matMul(x, readParam(ctx, w)), readParam(ctx, b));
      return [activation === 'tanh' ? tf.tanh(y) : y];
    },
  };
}

/** A seeded variable; unnamed, so its path is position-based ('fc1/param0') and equal across instances. */
export function seeded(shape: number[], seed: number, stddev = 0.5): tf.Variable {
  return tf.tidy(() => tf.variable(tf.randomNormal(shape, 0, stddev, 'float32', seed)));
}

/**
 * Two hand-written dense segments: x [n, 4] -> fc1 (4x6, tanh) -> head (6x3). Same seed,
 * same weights; the shapes fit core's blobData (4 features, 3 classes).
 */
export function denseSegments(seed = 1, dims = { inputs: 4, hidden: 6, outputs: 3 }): TrainableModel {
  const { inputs, hidden, outputs } = dims;
  return segmentModel(
    [
      denseSegment('fc1', seeded([inputs, hidden], seed), seeded([hidden], seed + 1, 0.1), 'tanh'),
      denseSegment('head', seeded([hidden, outputs], seed + 2), seeded([outputs], seed + 3, 0.1)),
    ],
    { inputShape: [inputs], outputShape: [outputs] },
  );
}

export function disposeModel(model: TrainableModel): void {
  tf.dispose(modelVariables(model));
}

export const evalCtx = { training: false, recomputing: false, step: 0 } as const;
export const trainCtx = { training: true, recomputing: false, step: 0 } as const;
