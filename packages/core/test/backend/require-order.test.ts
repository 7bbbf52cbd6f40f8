// Fresh processes: require-time model building in every load order, and the shim alone
// (selectBackend('wasm'), nothing else) training an unchanged model.fit convnet.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';

const modules = {
  core: path.resolve(__dirname, '../../src'),
  tfjs: require.resolve('@tensorflow/tfjs'),
  wasm: require.resolve('@tensorflow/tfjs-backend-wasm'),
};

function runChild(script: string): Promise<{ code: number; out: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-order-'));
  fs.writeFileSync(path.join(dir, 'main.js'), `const modules = ${JSON.stringify(modules)};\n${script}`);
  return new Promise((resolve) => {
    execFile(process.execPath, ['main.js'], { cwd: dir, timeout: 90_000 }, (err, stdout, stderr) => {
      fs.rmSync(dir, { recursive: true, force: true });
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, out: stdout + stderr });
    });
  });
}

/** The JSON a child printed after 'RESULT '. */
const resultOf = (out: string) => JSON.parse(out.split('RESULT ')[1].split('\n')[0]);

/** The user's program: a small convnet trained with plain model.fit, as in tfjs's examples. */
const modelFitProgram = `
const model = tf.sequential({ layers: [
  tf.layers.conv2d({ inputShape: [8, 8, 1], filters: 4, kernelSize: 3, activation: 'relu', kernelInitializer: tf.initializers.glorotUniform({ seed: 1 }) }),
  tf.layers.maxPooling2d({ poolSize: 2 }),
  tf.layers.flatten(),
  tf.layers.dense({ units: 2, activation: 'softmax', kernelInitializer: tf.initializers.glorotUniform({ seed: 2 }) }),
] });
async function train() {
  const labels = Array.from({ length: 32 }, (_, i) => i % 2);
  const xs = tf.tidy(() => tf.add(tf.randomNormal([32, 8, 8, 1], 0, 0.3, 'float32', 3), tf.reshape(tf.tensor1d(labels), [32, 1, 1, 1])));
  const ys = tf.oneHot(tf.tensor1d(labels, 'int32'), 2);
  model.compile({ optimizer: tf.train.adam(0.02), loss: 'categoricalCrossentropy' });
  const h = await model.fit(xs, ys, { epochs: 6, batchSize: 8, verbose: 0 });
  return h.history.loss;
}
`;

describe('backend: require order and the shim on its own (fresh processes)', function () {
  this.timeout(600_000);

  const orders = [
    ['core', 'tfjs', 'wasm'],
    ['core', 'wasm', 'tfjs'],
    ['tfjs', 'core', 'wasm'],
    ['tfjs', 'wasm', 'core'],
    ['wasm', 'tfjs', 'core'],
    ['wasm', 'core', 'tfjs'],
  ];
  for (const order of orders) {
    it(`layers built at require time work when ${order.join(', then ')} are required; selectBackend('wasm') then trains them`, async () => {
      const { code, out } = await runChild(`
let tf, core;
for (const m of ${JSON.stringify(order)}) { const x = require(modules[m]); if (m === 'tfjs') tf = x; if (m === 'core') core = x; }
${modelFitProgram}
const builtOn = tf.getBackend();
core.selectBackend('wasm', { log: false })
  .then(train)
  .then((loss) => console.log('RESULT ' + JSON.stringify({ builtOn, trainedOn: tf.getBackend(), first: loss[0], last: loss[loss.length - 1] })))
  .catch((e) => { console.log('FAILED ' + e.message); process.exit(1); });
`);
      expect(code, out).to.equal(0);
      const result = resultOf(out);
      expect(result).to.include({ builtOn: 'cpu', trainedOn: 'wasm' });
      expect(result.last).to.be.lessThan(result.first);
    });
  }

  it('with core loaded, tf.ready() keeps cpu whichever of core and the wasm package is required first; without core it picks wasm (docs/backends.md §0)', async () => {
    const readyOn: Record<string, string> = {};
    for (const order of [['tfjs', 'wasm'], ['tfjs', 'wasm', 'core'], ['tfjs', 'core', 'wasm']]) {
      const { code, out } = await runChild(`
for (const m of ${JSON.stringify(order)}) require(modules[m]);
const tf = require(modules.tfjs);
tf.ready().then(() => console.log('RESULT ' + JSON.stringify(tf.getBackend())));
`);
      expect(code, out).to.equal(0);
      readyOn[order.join(', ')] = resultOf(out);
    }
    expect(readyOn).to.deep.equal({ 'tfjs, wasm': 'wasm', 'tfjs, wasm, core': 'cpu', 'tfjs, core, wasm': 'cpu' });
  });

  it("selectBackend('wasm') alone lets unchanged model.fit code train a convnet; stock wasm cannot", async () => {
    const shimmed = await runChild(`
const tf = require(modules.tfjs);
const { selectBackend } = require(modules.core);
${modelFitProgram}
selectBackend('wasm', { log: false }).then(train).then((loss) => console.log('RESULT ' + JSON.stringify({ backend: tf.getBackend(), loss })));
`);
    expect(shimmed.code, shimmed.out).to.equal(0);
    const { backend, loss } = resultOf(shimmed.out);
    expect(backend).to.equal('wasm');
    expect(loss[loss.length - 1]).to.be.lessThan(0.7 * loss[0]);

    const stock = await runChild(`
const tf = require(modules.tfjs);
require(modules.wasm);
tf.setBackend('cpu');
${modelFitProgram}
tf.setBackend('wasm').then(train).then(() => console.log('TRAINED'), (e) => console.log('FAILED ' + e.message));
`);
    expect(stock.out).to.match(/FAILED .*Conv2DBackpropFilter/);
  });
});
