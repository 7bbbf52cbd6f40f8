import type * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '@tapfit/core';

/**
 * Checks a list of resolution streams (docs/techniques.md §2.3): the expected count,
 * channels-last images, stream i at half the spatial size of stream i - 1, and the
 * configured channel counts. Errors name the segment and the fix.
 */
export function checkStreams(segment: string, xs: readonly tf.Tensor[], channels?: readonly number[], count = channels?.length): void {
  const fail = (why: string, fix: string): never => {
    throw new TapfitError(ErrorCodes.SHAPE, `segment '${segment}': ${why}; ${fix}.`);
  };
  if (count !== undefined && xs.length !== count) fail(`expects ${count} streams, got ${xs.length} ([${xs.map((x) => `[${x.shape}]`).join(', ')}])`, 'feed it the previous segment\'s streams');
  const base = xs[0]?.shape;
  xs.forEach((x, i) => {
    if (x.rank !== base.length) fail(`stream ${i} is [${x.shape}] but stream 0 is [${base}]`, 'all streams must have the same rank');
    if (channels && x.shape[x.rank - 1] !== channels[i]) fail(`stream ${i} has ${x.shape[x.rank - 1]} channels, configured ${channels[i]}`, 'build the segment with the channel counts of its input');
    if (x.shape[0] !== base[0]) fail(`stream ${i} has batch ${x.shape[0]}, stream 0 ${base[0]}`, 'all streams come from one batch');
    for (let a = 1; a < x.rank - 1; a++) {
      if (x.shape[a] * 2 ** i !== base[a]) {
        fail(
          `stream ${i} is [${x.shape}] but must have 1/${2 ** i} of stream 0's spatial size ([${base}]): the stream shapes do not halve`,
          'make the input size divisible by 2^(streams - 1) times the stem\'s reduction (4 for RevBiFPN)',
        );
      }
    }
  });
}

/** Shape of stream `i` given stream 0's (batch included), with `channels`. */
export function streamShape(base: tf.Shape, i: number, channels: number): tf.Shape {
  return [base[0], ...base.slice(1, -1).map((d) => (d === null ? null : Math.floor(d / 2 ** i))), channels];
}
