// new Trainer({ model, plugins }) refuses, when it is built, a model it could not train and a
// plugins option that is not a list (TAPFIT_E_CONFIG naming the likely mix-up and the fix),
// where before it built a trainer whose fit failed with a bare TypeError.

import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { segmentModel, SilentLogger, Trainer, type TapfitPlugin, type TrainerOptions } from '../src';
import { thrown, tinyMlp, useBackend } from './fixtures';

const build = (extra: Partial<TrainerOptions> & Record<string, unknown>) => new Trainer({ model: tinyMlp(), loss: 'meanSquaredError', optimizer: 'sgd', logger: new SilentLogger(), ...extra } as TrainerOptions);

function expectConfig(f: () => unknown, ...patterns: RegExp[]): void {
  const err = thrown(f);
  expect(err.code, err.message).to.equal('TAPFIT_E_CONFIG');
  for (const p of patterns) expect(err.message).to.match(p);
}

describe('Trainer: a model or plugins option it cannot use is refused when it is built', () => {
  useBackend('cpu');

  it('a layer (model.layers[0]) is refused, naming the layer and the model to pass instead', () => {
    const model = tinyMlp();
    const layer = model.layers[0]!;
    expectConfig(() => build({ model: layer as never }), new RegExp(`a layer \\(Dense '${layer.name}'\\)`), /not a tfjs-layers model .* or a segment model/, /model\.layers\[i\]/);
  });

  it('a plain object, a number, a Promise (an un-awaited tf.loadLayersModel) and a graph-model-like object are refused, each with its fix', () => {
    expectConfig(() => build({ model: {} as never }), /`model` is a plain object \(keys: none\)/);
    // A description of a model (a { layers } object, its JSON) is named as one, with the calls that build it.
    expectConfig(() => build({ model: { layers: [] } as never }), /a plain object \(keys: layers\)/, /A description of a model .* is not one: build it \(tf\.sequential, await tf\.models\.modelFromJSON\(json\)\)/);
    expect(typeof tf.models.modelFromJSON, 'the API the message names exists').to.equal('function');
    expectConfig(() => build({ model: 3 as never }), /`model` is a number/);
    const pending = Promise.resolve(tinyMlp());
    expectConfig(() => build({ model: pending as never }), /is a Promise/, /await tf\.loadLayersModel/);
    expectConfig(() => build({ model: { execute: () => undefined, predict: () => undefined } as never }), /a graph model \(tf\.loadGraphModel\)/, /tf\.loadLayersModel/);
  });

  it('a tfjs-layers model from a copy of tfjs the module cache does not show (a bundle, an ESM import) is refused naming `npm ls @tensorflow/tfjs`', () => {
    // What such a model looks like here: a model's members, not this copy's class.
    const foreign = Object.assign(Object.create(null) as object, { layers: [], fit: () => undefined, getClassName: () => 'Functional' });
    expectConfig(() => build({ model: foreign as never }), /`model` is a Functional made by another copy of @tensorflow\/tfjs/, /npm ls @tensorflow\/tfjs/);
  });

  it('a segment model whose segment lacks name, params or forward is refused naming the segment and what it lacks', () => {
    const w = tf.variable(tf.zeros([4, 3]));
    expectConfig(() => build({ model: { segments: [] } as never }), /no segments/);
    expectConfig(() => build({ model: { segments: [{ name: 'a', params: [w], forward: (xs: tf.Tensor[]) => xs }, { name: 'b', params: [w] }] } as never }), /segment 1 lacks a `forward\(xs, ctx\)` function/);
    expectConfig(() => build({ model: { segments: [{ params: w, forward: () => [] }] } as never }), /segment 0 lacks a string `name`, a `params` list/);
    w.dispose();
  });

  it('plugins that is not a list is refused: a name (a CLI config habit) and a single plugin, each with its fix', () => {
    expectConfig(() => build({ plugins: 'lora' as never }), /`plugins` must be a list of plugins, got the string 'lora'/, /plugins: \[lora\(/);
    const single: TapfitPlugin = { name: 'single', core: '*', apply() {} };
    expectConfig(() => build({ plugins: single as never }), /got one plugin \('single'\)/, /plugins: \[plugin\]/);
  });

  it('still accepted: a tfjs-layers model, a segment model and plugins: null or a list; both models train', async () => {
    const w = tf.variable(tf.randomNormal([4, 3], 0, 0.1, 'float32', 1));
    const segments = segmentModel([{ name: 'linear', params: [w], forward: ([x]) => [tf.matMul(x!, w)] }], { inputShape: [4], outputShape: [3] });
    const x = tf.randomNormal([8, 4], 0, 1, 'float32', 2);
    const y = tf.randomNormal([8, 3], 0, 1, 'float32', 3);
    for (const model of [tinyMlp(), segments]) {
      const t = build({ model, plugins: null as never });
      const before = t.model.segments.flatMap((s) => s.params).map((v) => Array.from(v.dataSync()));
      await t.fit(x, y, { epochs: 1, batchSize: 8 });
      const after = t.model.segments.flatMap((s) => s.params).map((v) => Array.from(v.dataSync()));
      expect(after, 'one step moved the weights').to.not.deep.equal(before);
      t.dispose();
    }
    build({ plugins: [] }).dispose();
    tf.dispose([w, x, y]);
  });

  it('a model built by a second copy of @tensorflow/tfjs-layers is refused as a duplicate package, naming the model, both folders and `npm ls`', async () => {
    // A real second copy (the installed bundle in a folder with its own node_modules), loaded in a fresh process:
    // a second copy loaded here would make every later trainer refuse.
    const packageDir = path.resolve(__dirname, '../..');
    const installed = path.dirname(require.resolve('@tensorflow/tfjs-layers/package.json'));
    const dir = fs.mkdtempSync(path.join(packageDir, '.single-copy-'));
    const copy = path.join(dir, 'node_modules/@tensorflow/tfjs-layers');
    fs.mkdirSync(path.join(copy, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(installed, 'package.json'), path.join(copy, 'package.json'));
    fs.copyFileSync(path.join(installed, 'dist/tf-layers.node.js'), path.join(copy, 'dist/tf-layers.node.js'));
    const script = `
      const core = require(${JSON.stringify(path.join(packageDir, 'dist/src'))});
      const layers = require(${JSON.stringify(copy)});
      const model = layers.sequential({ layers: [layers.layers.dense({ inputShape: [4], units: 3 })] });
      let out;
      try { new core.Trainer({ model, loss: 'meanSquaredError', optimizer: 'sgd', logger: new core.SilentLogger() }); out = { built: true }; } catch (e) { out = { code: e.code, message: e.message }; }
      console.log(JSON.stringify(out));`;
    const out = await new Promise<{ code?: string; message?: string; built?: boolean }>((resolve, reject) => {
      execFile(process.execPath, ['-e', script], { cwd: packageDir, timeout: 60_000 }, (err, stdout, stderr) => {
        fs.rmSync(dir, { recursive: true, force: true });
        if (err) return reject(new Error(`${err.message}\n${stderr}`));
        resolve(JSON.parse(stdout.trim().split('\n').pop()!));
      });
    });
    expect(out.code, out.message).to.equal('TAPFIT_E_DUPLICATE_PACKAGE');
    expect(out.message).to.match(/^new Trainer\(\{ model \}\), whose model is a Sequential made by another copy of tfjs than @tapfit\/core's: two copies/);
    expect(out.message).to.include(`${fs.realpathSync(installed)} (`); // the installed copy's folder
    expect(out.message).to.include(`${path.basename(dir)}/node_modules/@tensorflow/tfjs-layers`); // and the second
    expect(out.message).to.include('npm ls @tensorflow/tfjs-core');
  });
});
