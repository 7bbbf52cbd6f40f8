import type { Position } from '../checkpoint/manifest';
import { ErrorCodes, TapfitError } from '../errors';

/**
 * A fit that continues an epoch stopped in the middle (stop(), or a checkpoint saved
 * there) must batch it as it was batched: the position counts batches of that size in
 * that order, so another batch size, shuffle setting or sample count would skip or repeat samples.
 * Throws naming the settings that continue it, or the epoch to start instead. An epoch's
 * sums logged under other names (other metrics) are dropped from the position: its means
 * then cover only the rest of it.
 */
export function checkContinuation(pos: Position, o: { batchSize: number; shuffle: boolean }, names: readonly string[], dataSize: number | undefined): Position {
  const soFar = pos.epochSoFar;
  if (pos.batch === 0 || !soFar) return pos;
  // Another sample count is another order of batches: some samples would run twice in the epoch, others not at all.
  if (soFar.dataSize !== undefined && dataSize !== undefined && soFar.dataSize !== dataSize) {
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `fit: epoch ${pos.epoch} was stopped after ${pos.batch} batch(es) of data holding ${soFar.dataSize} samples, and this fit's data holds ${dataSize} (another validationSplit, or other data). ` +
        `Continue the epoch with the same data (the position counts its batches in that data's order), or start the next one with initialEpoch: ${pos.epoch + 1}.`,
    );
  }
  if (soFar.batchSize !== o.batchSize || soFar.shuffle !== o.shuffle) {
    const was = `batchSize ${soFar.batchSize}, shuffle ${soFar.shuffle}`;
    throw new TapfitError(
      ErrorCodes.CONFIG,
      `fit: epoch ${pos.epoch} was stopped after ${pos.batch} batch(es) run with ${was}, and this fit asks for batchSize ${o.batchSize}, shuffle ${o.shuffle}. ` +
        `Continue the epoch with ${was} (the position counts its batches), or start the next one with initialEpoch: ${pos.epoch + 1}.`,
    );
  }
  if (soFar.names.join() === names.join()) return pos;
  return { ...pos, epochSoFar: { ...soFar, names: [...names], sums: names.map(() => 0), samples: 0 } };
}
