import { type LayerSelector, matchesPath } from '../common/selectors';
import type { LayerEntry } from './catalog';

/**
 * Does selector `s` pick layer `e`? Keywords pick by class; names, '*suffix' and
 * RegExps are tested against the layer path ('fc1', or 'encoder/fc1' inside a nested
 * model).
 */
export function selectsLayer(s: LayerSelector, e: LayerEntry): boolean {
  switch (s) {
    case 'output':
      return e.isHead;
    case 'all-dense':
      return e.className === 'Dense';
    case 'all-linear':
      return e.className === 'Dense' && !e.isHead;
    case 'all-conv2d':
      return e.className === 'Conv2D';
    case 'all-embedding':
      return e.className === 'Embedding';
  }
  return matchesPath(s, e.path);
}
