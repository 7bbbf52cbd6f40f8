import * as tf from '@tensorflow/tfjs';

/**
 * Sets every BatchNorm's moving mean and variance of a sequential model to the exact
 * population statistics of its input over `x` ("precise BN"), layer by layer in order,
 * each one seen through the already-calibrated layers before it, in inference mode,
 * as at test time.
 *
 * Why: a short run leaves BatchNorm's moving averages far from the statistics the final
 * weights produce (momentum 0.99 per batch: after 250 updates 8% of the initial 0/1 is
 * still in them, and the rest lags the moving weights), which understates BatchNorm's
 * test accuracy. Scoring BatchNorm after this is the stronger baseline to compare against.
 *
 * `x` is read in chunks of `chunkSize` samples; per-chunk moments are combined in float64.
 */
export function calibrateBatchNorm(model: tf.LayersModel, x: tf.Tensor, chunkSize = 500): void {
  if (!(model instanceof tf.Sequential)) throw new Error('calibrateBatchNorm: needs a tf.Sequential model (layers applied one after another).');
  const layers = model.layers;
  layers.forEach((layer, index) => {
    if (layer.getClassName() !== 'BatchNormalization') return;
    const axis = [layer.getConfig().axis ?? -1].flat() as number[];
    const before = layers.slice(0, index);
    const chunks: { count: number; mean: Float64Array; meanSquare: Float64Array }[] = [];
    const n = x.shape[0];
    for (let start = 0; start < n; start += chunkSize) {
      const size = Math.min(chunkSize, n - start);
      tf.tidy(() => {
        let h = tf.slice(x, start, size);
        for (const l of before) h = l.apply(h, { training: false }) as tf.Tensor;
        if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== h.rank - 1)) {
          throw new Error(`calibrateBatchNorm: layer '${layer.name}' normalises axis ${JSON.stringify(axis)}; only channels-last (axis -1) is supported.`);
        }
        const { mean, variance } = tf.moments(h, h.shape.slice(0, -1).map((_, i) => i));
        const m = Float64Array.from(mean.dataSync());
        const v = variance.dataSync();
        chunks.push({ count: h.size / h.shape[h.rank - 1], mean: m, meanSquare: m.map((mc, c) => v[c] + mc * mc) });
      });
    }
    const total = chunks.reduce((s, c) => s + c.count, 0);
    const channels = chunks[0].mean.length;
    const mean = new Float32Array(channels);
    const variance = new Float32Array(channels);
    for (let c = 0; c < channels; c++) {
      const m = chunks.reduce((s, k) => s + (k.count / total) * k.mean[c], 0);
      const ms = chunks.reduce((s, k) => s + (k.count / total) * k.meanSquare[c], 0);
      mean[c] = m;
      variance[c] = Math.max(ms - m * m, 0);
    }
    const weight = (suffix: string) => {
      const w = layer.weights.find((v) => v.originalName.endsWith(suffix));
      if (!w) throw new Error(`calibrateBatchNorm: layer '${layer.name}' has no ${suffix} weight.`);
      return w;
    };
    tf.tidy(() => {
      weight('moving_mean').write(tf.tensor1d(mean));
      weight('moving_variance').write(tf.tensor1d(variance));
    });
  });
}
