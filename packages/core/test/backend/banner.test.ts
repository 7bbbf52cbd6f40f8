// Fresh processes: loading @tapfit/core (or only its testing kit) keeps tfjs's Node banner out of the output.

import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';

const modules = {
  core: path.resolve(__dirname, '../../src'),
  testing: path.resolve(__dirname, '../../src/testing'),
  tfjs: require.resolve('@tensorflow/tfjs'),
  wasm: require.resolve('@tensorflow/tfjs-backend-wasm'),
};

const BANNER = /looks like you are running TensorFlow\.js in Node\.js/;

function output(script: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-banner-'));
  fs.writeFileSync(path.join(dir, 'main.js'), `const modules = ${JSON.stringify(modules)};\n${script}`);
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['main.js'], { cwd: dir, timeout: 90_000 }, (err, stdout, stderr) => {
      fs.rmSync(dir, { recursive: true, force: true });
      if (err) reject(new Error(`child failed: ${err.message}\n${stdout}${stderr}`));
      else resolve(stdout + stderr);
    });
  });
}

/** Makes and reads tensors on cpu, the way a first test or README example does. */
const useCpu = `tf.tidy(() => tf.add(tf.tensor1d([1, 2]), 1).dataSync()); console.log('done');`;

describe('tfjs Node banner', () => {
  it('tfjs alone prints it on the cpu backend (the control: the check below can see it)', async () => {
    const out = await output(`const tf = require(modules.tfjs);\n${useCpu}`);
    expect(out).to.match(BANNER);
  });

  it('is not printed once @tapfit/core is loaded, whichever of tfjs and core comes first', async () => {
    for (const first of ['tfjs', 'core']) {
      const order = first === 'core' ? ['core', 'tfjs'] : ['tfjs', 'core'];
      const out = await output(`${order.map((m) => `const ${m} = require(modules.${m});`).join('\n')}\nconst tf = tfjs;\n${useCpu}`);
      expect(out, `loaded ${order.join(', ')}`).to.equal('done\n');
    }
  });

  it('is not printed by a program that loads only the testing kit, nor after selectBackend picks cpu or wasm', async () => {
    const kit = await output(`require(modules.testing);\nconst tf = require(modules.tfjs);\n${useCpu}`);
    expect(kit).to.equal('done\n');
    for (const name of ['cpu', 'wasm']) {
      const out = await output(
        `require(modules.wasm);\nconst core = require(modules.core);\nconst tf = require(modules.tfjs);\n` +
          `core.selectBackend('${name}', { log: () => {} }).then(() => { ${useCpu} });`,
      );
      expect(out, name).to.equal('done\n');
    }
  });
});
