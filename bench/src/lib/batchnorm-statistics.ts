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
 * `x` is read in chunks of `chunkSize` samples.
 * Only channels-last BatchNorms (axis -1) are supported.
 */
export function calibrateBatchNorm(model: tf.LayersModel, x: tf.Tensor, chunkSize = 500): void {
  if (!(model instanceof tf.Sequential)) throw new Error('calibrateBatchNorm: needs a tf.Sequential model (layers applied one after another).');
  const layers = model.layers;
  layers.forEach((layer, index) => {
    if (layer.getClassName() !== 'BatchNormalization') return;
    const axis = [layer.getConfig().axis ?? -1].flat() as number[];
    const before = layers.slice(0, index);
    const weight = (suffix: string) => {
      const w = layer.weights.find((v) => v.originalName.endsWith(suffix));
      if (!w) throw new Error(`calibrateBatchNorm: layer '${layer.name}' has no ${suffix} weight.`);
      return w;
    };
    // Per-sample moments on the device (short sums stay accurate in float32), combined on
    // the host in float64: within-sample plus between-sample variance, all samples weighing
    // alike (same spatial size).
    const means: Float32Array[] = [];
    const variances: Float32Array[] = [];
    for (let start = 0; start < x.shape[0]; start += chunkSize) {
      tf.tidy(() => {
        let h = tf.slice(x, start, Math.min(chunkSize, x.shape[0] - start));
        for (const l of before) h = l.apply(h, { training: false }) as tf.Tensor;
        if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== h.rank - 1)) {
          throw new Error(`calibrateBatchNorm: layer '${layer.name}' normalises axis ${JSON.stringify(axis)}; only channels-last (axis -1) is supported.`);
        }
        const spatial = h.shape.slice(1, -1).map((_, i) => i + 1);
        const m = spatial.length ? tf.moments(h, spatial) : { mean: h, variance: tf.zerosLike(h) };
        means.push(m.mean.dataSync() as Float32Array);
        variances.push(m.variance.dataSync() as Float32Array);
      });
    }
    const channels = weight('moving_mean').read().shape[0];
    const mean = new Float64Array(channels);
    const variance = new Float64Array(channels);
    const n = x.shape[0];
    means.forEach((chunk) => chunk.forEach((v, i) => (mean[i % channels] += v / n)));
    means.forEach((chunk, k) => chunk.forEach((v, i) => (variance[i % channels] += (variances[k][i] + (v - mean[i % channels]) ** 2) / n)));
    tf.tidy(() => {
      weight('moving_mean').write(tf.tensor1d(Float32Array.from(mean)));
      weight('moving_variance').write(tf.tensor1d(Float32Array.from(variance)));
    });
  });
}

/**
 * Runs `fn` with the model's BatchNorm moving statistics calibrated (calibrateBatchNorm),
 * then puts the moving averages back as they were, so scoring in the middle of a run does
 * not change how the run goes on.
 */
export async function withCalibratedBatchNorm<T>(model: tf.LayersModel, x: tf.Tensor, fn: () => Promise<T>): Promise<T> {
  const moving = model.weights.filter((w) => /moving_(mean|variance)$/.test(w.originalName));
  const saved = moving.map((w) => tf.clone(w.read()));
  try {
    calibrateBatchNorm(model, x);
    return await fn();
  } finally {
    moving.forEach((w, i) => w.write(saved[i]));
    saved.forEach((t) => t.dispose());
  }
}
