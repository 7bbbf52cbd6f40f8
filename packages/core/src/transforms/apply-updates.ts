import * as tf from '@tensorflow/tfjs';
import { ErrorCodes, TapfitError } from '../errors';
import type { NamedTensors } from '../tensors';
import { scaledSum } from './fused-updates';

/**
 * `p.assign(p + scale u)` for every update (updates are added, optax's convention; `scale`
 * is a learning rate folded in by transformStep, one fused pass on wasm). All keys and
 * shapes are checked before any variable changes, so a bad update leaves every parameter
 * as it was. Parameters without an update are left alone.
 */
export function applyUpdates(params: Record<string, tf.Variable>, updates: NamedTensors, scale = 1): void {
  for (const [key, u] of Object.entries(updates)) {
    const p = params[key];
    if (p === undefined) {
      throw new TapfitError(
        ErrorCodes.CONFIG,
        `applyUpdates: update '${key}' has no parameter (parameters: ${Object.keys(params).join(', ') || 'none'}). ` +
          'Key gradients by the variable names of the parameters they update.',
      );
    }
    if (p.shape.length !== u.shape.length || p.shape.some((d, i) => d !== u.shape[i])) {
      throw new TapfitError(
        ErrorCodes.SHAPE,
        `applyUpdates: parameter '${key}' has shape [${p.shape}] but its update has shape [${u.shape}].`,
      );
    }
  }
  tf.tidy(() => {
    for (const [key, u] of Object.entries(updates)) params[key].assign(scale === 1 ? tf.add(params[key], u) : scaledSum(params[key], 1, u, scale));
  });
}
