import { ErrorCodes, TapfitError } from '@tapfit/core';

export interface ScaleHyperparametersOptions {
  /** PyTorch-form learning rate tuned at `referenceBatchSize`. */
  lr: number;
  /** PyTorch-form momentum tuned at `referenceBatchSize`, in [0, 1). */
  momentum: number;
  referenceBatchSize: number;
  batchSize: number;
}

/**
 * Carries SGDM hyperparameters from batch B_ref to batch B keeping, per sample, the
 * momentum horizon and the total step fixed (docs/techniques.md §5.5, stated for
 * PyTorch-form momentum): m_B = m_ref^(B / B_ref), lr_B = lr_ref (B / B_ref)
 * (1 - m_B) / (1 - m_ref). Weight decay stays as it is. At B = B_ref it returns the
 * reference values.
 */
export function scaleHyperparameters(options: ScaleHyperparametersOptions): { lr: number; momentum: number } {
  const { lr, momentum, referenceBatchSize, batchSize } = options;
  const bad = (what: string, value: unknown, rule: string): never => {
    throw new TapfitError(ErrorCodes.CONFIG, `scaleHyperparameters: '${what}' ${rule} (got ${value}).`);
  };
  if (!(Number.isFinite(lr) && lr >= 0)) bad('lr', lr, 'must be a finite number >= 0');
  if (!(momentum >= 0 && momentum < 1)) bad('momentum', momentum, 'must be in [0, 1)');
  if (!(referenceBatchSize > 0)) bad('referenceBatchSize', referenceBatchSize, 'must be > 0');
  if (!(batchSize > 0)) bad('batchSize', batchSize, 'must be > 0');
  if (batchSize === referenceBatchSize) return { lr, momentum };
  const ratio = batchSize / referenceBatchSize;
  const m = momentum ** ratio;
  return { lr: momentum === 0 ? lr * ratio : (lr * ratio * (1 - m)) / (1 - momentum), momentum: m };
}
