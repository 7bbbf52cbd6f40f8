import * as tf from '@tensorflow/tfjs';
import { stateError } from '../common/errors';
import { requireLoraLayers } from './adapters';

/**
 * Fold the active adapter into the base kernels (K += s A B) so inference runs the
 * base computation only. All-or-nothing: every new kernel is computed and checked
 * finite before any is written.
 */
export function mergeAdapter(model: tf.LayersModel): void {
  swapKernels(model, true);
}

/** Undo `mergeAdapter`: the kernels it overwrote, bit for bit (K -= s A B, to float rounding, for kernels written since or a model loaded merged). */
export function unmergeAdapter(model: tf.LayersModel): void {
  swapKernels(model, false);
}

function swapKernels(model: tf.LayersModel, merge: boolean): void {
  const action = merge ? 'merge' : 'unmerge';
  const layers = requireLoraLayers(model, action).filter((l) => l.activeAdapter !== null);
  if (layers.length === 0) throw stateError(`${action}: no adapter is active; call setActiveAdapter(name) first.`);
  const wrong = layers.filter((l) => l.isMerged === merge);
  if (wrong.length) {
    throw stateError(
      merge
        ? `merge: adapter '${wrong[0].activeAdapter}' is already merged (layers ${wrong.map((l) => l.name).join(', ')}); merging twice would add the update twice. Call unmerge() first.`
        : `unmerge: adapter '${wrong[0].activeAdapter}' is not merged (layers ${wrong.map((l) => l.name).join(', ')}); nothing to unmerge.`,
    );
  }
  const next: tf.Tensor[] = [];
  try {
    for (const l of layers) next.push(l.prepareKernel(merge));
    const bad = layers.filter((_, i) => !tf.tidy(() => tf.all(tf.isFinite(next[i])).dataSync()[0]));
    if (bad.length) throw stateError(`${action}: the result is not finite in layers ${bad.map((l) => l.name).join(', ')}; the adapter weights hold NaN or Inf. Nothing was changed.`);
    layers.forEach((l, i) => l.commitKernel(next[i], merge));
  } finally {
    tf.dispose(next);
  }
}
