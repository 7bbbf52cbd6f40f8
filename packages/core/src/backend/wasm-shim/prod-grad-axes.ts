import * as tf from '@tensorflow/tfjs';
import type { Overrides } from './overrides';

/**
 * Prod's gradient with negative axes. tfjs 4.22's gradient builds a transpose from the
 * axes as given, so tf.prod(x, -1) on the tape threw "rank of input 3 must match length
 * of perm 0,1,2,-1" on every backend (the forward counts from the end). The axes are
 * counted from the end before tfjs's gradient runs; its values are left as they are.
 */
export function installProdGradAxes(o: Overrides): void {
  const stock = tf.getGradient('Prod');
  if (!stock) return;
  o.gradient({
    ...stock,
    gradFunc: (dy, saved, attrs) => {
      const axis = (attrs as { axis?: number | number[] | null }).axis;
      const counted = axis == null ? axis : tf.util.parseAxisParam(axis, saved[0].shape);
      return stock.gradFunc(dy, saved, { ...attrs, axis: counted } as tf.NamedAttrMap);
    },
  });
}
