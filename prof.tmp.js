const tf = require('@tensorflow/tfjs');
const { selectBackend } = require('@tapfit/core');
const { mlp } = require('@tapfit/examples');
(async () => {
  await selectBackend('wasm', { log: false });
  const m = mlp({ seed: 1 });
  const x = tf.randomNormal([128, 784]); const y = tf.oneHot(tf.randomUniform([128], 0, 10, 'int32'), 10);
  const opt = tf.train.sgd(0.01);
  const ce = (a, b) => tf.losses.softmaxCrossEntropy(a, b);
  const step = () => tf.tidy(() => { const { grads } = tf.variableGrads(() => ce(y, m.apply(x, { training: true }))); opt.applyGradients(grads); });
  for (let i = 0; i < 3; i++) step();
  let t = performance.now(); for (let i = 0; i < 10; i++) step(); console.log('hand ms', (performance.now() - t) / 10);
  const prof = await tf.profile(() => step());
  const agg = {}; for (const k of prof.kernels) { agg[k.name] = (agg[k.name] || 0) + k.kernelTimeMs; }
  console.log(Object.entries(agg).sort((a, b) => b[1] - a[1]).slice(0, 8));
  m.compile({ optimizer: tf.train.sgd(0.01), loss: ce });
  const X = tf.concat(Array(10).fill(x)); const Y = tf.concat(Array(10).fill(y));
  await m.fit(X, Y, { batchSize: 128, epochs: 1, verbose: 0 });
  t = performance.now(); await m.fit(X, Y, { batchSize: 128, epochs: 1, verbose: 0, shuffle: false }); console.log('fit ms', (performance.now() - t) / 10);
})();
