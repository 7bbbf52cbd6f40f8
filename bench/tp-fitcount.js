const tf = require('@tensorflow/tfjs');
const core = require('@tapfit/core');
const { loadMnist, mnistCnn } = require('@tapfit/examples');
(async () => {
  await core.selectBackend('wasm', { log: false, threads: 1 });
  const { train } = loadMnist({ train: 400, test: 10, layout: 'image', seed: 1 });
  const x = train.x.slice(0, 330), y = train.y.slice(0, 330);
  const runData = new core.TensorData(x.slice(30, 300), y.slice(30, 300));
  console.log('runData size', runData.size, x.slice(30, 300).shape);
  const t = new core.Trainer({ model: mnistCnn({ norm: 'none', seed: 1 }), loss: 'softmaxCrossEntropy', optimizer: core.sgd({ lr: 1e-5, momentum: 0.99 }), logger: new core.SilentLogger(), seed: 1 });
  let steps = 0;
  t.hooks?.afterStep?.tap?.('count', () => { steps++; });
  await t.fit(new core.TensorData(x.slice(0, 30), y.slice(0, 30)), { epochs: 1, batchSize: 1, shuffle: false });
  const t0 = performance.now();
  const r = await t.fit(runData, { epochs: 2, batchSize: 1, shuffle: false });
  const s = (performance.now() - t0) / 1000;
  console.log('seconds', s.toFixed(2), 'history', JSON.stringify(Object.keys(r.history)), 'loss entries', r.history.loss.length, 'steps counted', steps, 'trainer step', t.step ?? t.state?.step);
})();
