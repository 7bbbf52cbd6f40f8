import { ErrorCodes, TapfitError } from '@tapfit/core';

/**
 * Updates stage s (1 = input, S = loss) makes between a micro-batch's forward and its
 * backward: D_s = 2 (S - s) + extraDelay (docs/techniques.md §5.2). For S = 4:
 * [6, 4, 2, 0]. `extraDelay` (default 0) models a forward and backward of the same
 * micro-batch falling in different ticks.
 */
export function stageDelays(stages: number, extraDelay = 0): number[] {
  if (!Number.isInteger(stages) || stages < 1) {
    throw new TapfitError(ErrorCodes.CONFIG, `pipeline: 'stages' must be an integer >= 1 (got ${stages}).`);
  }
  if (!Number.isInteger(extraDelay) || extraDelay < 0) {
    throw new TapfitError(ErrorCodes.CONFIG, `pipeline: 'extraDelay' must be an integer >= 0 (got ${extraDelay}).`);
  }
  return Array.from({ length: stages }, (_, i) => 2 * (stages - (i + 1)) + extraDelay);
}
