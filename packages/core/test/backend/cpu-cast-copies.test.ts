import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useShimmedWasm } from './helpers';

/*
 * tfjs's cpu Cast to a wider dtype shared the input's data, which then moved to wasm as
 * the old dtype (cpu-cast-copies.ts): labels made on cpu before selectBackend() read as ~0.
 */
describe('backend: tensors cast on cpu move to wasm intact', function () {
  before(useShimmedWasm);
  after(() => tf.setBackend('cpu'));

  it('oneHot(...).toFloat(), int32 -> float32 and bool -> int32/float32 made on cpu read the same on wasm', async () => {
    await tf.setBackend('cpu');
    const labels = tf.tensor1d([0, 2, 1], 'int32');
    const made = {
      oneHot: tf.oneHot(labels, 3).toFloat(),
      intToFloat: tf.tensor1d([3, -7, 1 << 20], 'int32').toFloat(),
      boolToInt: tf.tensor1d([true, false, true], 'bool').toInt(),
      boolToFloat: tf.tensor1d([false, true], 'bool').toFloat(),
    };
    const onCpu = Object.fromEntries(Object.entries(made).map(([k, t]) => [k, { dtype: t.dtype, values: Array.from(t.dataSync()) }]));
    expect(onCpu.oneHot.values).to.deep.equal([1, 0, 0, 0, 0, 1, 0, 1, 0]);
    await tf.setBackend('wasm');
    for (const [k, t] of Object.entries(made)) {
      // A kernel on wasm reads the moved data (dataSync alone would read back the cpu copy's values).
      const doubled = tf.mul(t, tf.scalar(2, t.dtype === 'bool' ? 'int32' : t.dtype));
      expect({ dtype: t.dtype, values: Array.from(doubled.dataSync()).map((v) => v / 2) }, k).to.deep.equal(onCpu[k]);
      doubled.dispose();
    }
    expect(tf.sum(made.oneHot).dataSync()[0]).to.equal(3);
    tf.dispose([labels, ...Object.values(made)]);
  });
});
