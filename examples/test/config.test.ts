import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { SilentLogger, TapfitError } from '@tapfit/core';
import { configSchema, loadMnist, loadPlugin, readConfig, runConfig, type TrainConfig } from '../src';
import { rejectionOf } from './helpers';

const demoConfig = path.join(__dirname, '..', '..', 'configs', 'demo.json');

function writeConfig(body: unknown): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-config-')), 'config.json');
  fs.writeFileSync(file, JSON.stringify(body));
  return file;
}
const errorOf = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e as TapfitError;
  }
  throw new Error('expected an error');
};

describe('tapfit train: configs', () => {
  it('the demo config is valid and composes technique plugins', () => {
    const c = readConfig(demoConfig);
    expect(c.model.preset).to.equal('mnist-cnn');
    expect(c.plugins.map((p) => (Array.isArray(p) ? p[0] : p))).to.deep.equal(['@tapfit/plugin-onlinenorm', '@tapfit/example-plugin-label-smoothing']);
    expect(c.data).to.deep.equal({ dataset: 'mnist', train: 8000, test: 2000 });
  });

  it('invalid option values fail with the option path', () => {
    const base = JSON.parse(fs.readFileSync(demoConfig, 'utf8'));
    const err = errorOf(() => readConfig(writeConfig({ ...base, optimizer: { name: 'adam', lr: -1 } })));
    expect(err.code).to.equal('TAPFIT_E_CONFIG');
    expect(err.message).to.match(/config: option 'optimizer\.lr'/);
    expect(errorOf(() => readConfig(writeConfig({ ...base, training: { epochs: 0 } }))).message).to.match(/training\.epochs/);
    // The presets output logits: a loss that reads probabilities trains them badly, so it is refused with the one to use.
    expect(errorOf(() => readConfig(writeConfig({ ...base, loss: 'categoricalCrossentropy' }))).message).to.match(
      /option 'loss' must not be 'categoricalCrossentropy' with the presets, which output logits .*use 'softmaxCrossEntropy'/,
    );
    expect(errorOf(() => readConfig(writeConfig({ ...base, data: { dataset: 'mnist', train: 9000, test: 2000 } }))).message).to.equal(
      "config: option 'data.test' must leave the train split room: data.train + data.test must be <= 10000 (the splits are disjoint) (got 2000).",
    );
  });

  it('an unknown key at any level fails and names the nearest valid key (nothing is dropped silently)', () => {
    const base = JSON.parse(fs.readFileSync(demoConfig, 'utf8'));
    const cases: [Record<string, unknown>, string][] = [
      [{ trainig: { epochs: 1 } }, "config: unknown option(s) 'trainig' (did you mean 'training'?)"],
      [{ optimizer: { name: 'sgd', lr: 0.1, momentun: 0.9 } }, "config: unknown option(s) 'optimizer.momentun' (did you mean 'momentum'?)"],
      [{ optimizer: { name: 'adamw', lr: 0.1, weight_decay: 0.01 } }, "config: unknown option(s) 'optimizer.weight_decay' (did you mean 'weightDecay'?)"],
      [{ training: { epochs: 1, batchsize: 8 } }, "config: unknown option(s) 'training.batchsize' (did you mean 'batchSize'?)"],
      [{ model: { preset: 'mnist-cnn', options: { nrom: 'batchNorm' } } }, "config: unknown option(s) 'model.options.nrom' (did you mean 'norm'?)"],
      [{ data: { dataset: 'mnist', tets: 100 } }, "config: unknown option(s) 'data.tets' (did you mean 'test'?)"],
      [{ log: { metric: 'm.jsonl' } }, "config: unknown option(s) 'log.metric' (did you mean 'metrics'?)"],
      [{ checkpoint: { dir: 'ckpt', evry: 10 } }, "config: unknown option(s) 'checkpoint.evry' (did you mean 'every'?)"],
      [{ plugins: [{ package: '@tapfit/plugin-onlinenorm', optoins: {} }] }, "config: unknown option(s) 'plugins.0.optoins' (did you mean 'options'?)"],
    ];
    for (const [change, message] of cases) {
      const err = errorOf(() => readConfig(writeConfig({ ...base, ...change })));
      expect(err.code, message).to.equal('TAPFIT_E_CONFIG');
      expect(err.message).to.equal(`${message}.`);
    }
  });

  it('a config an editor saved with a byte-order mark reads as the same config', () => {
    const text = fs.readFileSync(demoConfig, 'utf8');
    const file = writeConfig({});
    fs.writeFileSync(file, '\uFEFF' + text);
    expect(readConfig(file)).to.deep.equal(readConfig(demoConfig));
  });

  it('a valid checkpoint section is kept', () => {
    const base = JSON.parse(fs.readFileSync(demoConfig, 'utf8'));
    expect(readConfig(writeConfig({ ...base, checkpoint: { dir: 'ckpt', every: 50 } })).checkpoint).to.deep.equal({ dir: 'ckpt', every: 50 });
    expect(errorOf(() => readConfig(writeConfig({ ...base, checkpoint: { dir: 'ckpt', every: 0 } }))).message).to.match(/option 'checkpoint\.every' must be a whole number of steps >= 1 \(got 0\)/);
  });

  it('an unknown plugin package names the package and the install command', async () => {
    const err = await rejectionOf(loadPlugin('@tapfit/plugin-does-not-exist', 0, process.cwd()));
    expect(err.message).to.match(/config\.plugins\.0: plugin package '@tapfit\/plugin-does-not-exist' is not installed.*npm install @tapfit\/plugin-does-not-exist/);
  });

  it('a package without tapfitPlugin() is refused', async () => {
    expect((await rejectionOf(loadPlugin('semver', 1, process.cwd()))).message).to.match(/does not export tapfitPlugin/);
  });

  it('loads a plugin package with its options', async () => {
    const p = await loadPlugin(['@tapfit/example-plugin-label-smoothing', { epsilon: 0.1 }], 0, process.cwd());
    expect(p.name).to.equal('label-smoothing');
  });
});

describe('MNIST loader', () => {
  before(() => tf.setBackend('cpu'));

  it('gives disjoint, seeded splits of real digits with every class', () => {
    const a = loadMnist({ train: 500, test: 200, seed: 3 });
    const b = loadMnist({ train: 500, test: 200, seed: 3 });
    expect(a.train.x.shape).to.deep.equal([500, 28, 28, 1]);
    expect(Array.from(a.train.y.dataSync())).to.deep.equal(Array.from(b.train.y.dataSync()));
    expect(new Set(a.train.y.dataSync()).size).to.equal(10);
    const [min, max] = [a.train.x.min().dataSync()[0], a.train.x.max().dataSync()[0]];
    expect(min).to.equal(0);
    expect(max).to.be.within(0.9, 1);
    for (const s of [a, b]) [s.train, s.test].forEach((d) => d.dispose());
  });
});

describe('tapfit train: the demo config trains (short version)', () => {
  it('reaches > 90% test accuracy on 1,500 digits in 2 epochs, leaking nothing', async () => {
    const config: TrainConfig = configSchema.parse({ ...JSON.parse(fs.readFileSync(demoConfig, 'utf8')), backend: 'wasm', data: { dataset: 'mnist', train: 1500, test: 500 }, training: { epochs: 2, batchSize: 32 }, log: { progress: false } });
    await tf.setBackend('wasm').catch(() => undefined);
    const result = await runConfig(config, { logger: new SilentLogger(), quiet: true });
    expect(result.backend).to.equal('wasm');
    expect(result.describe.plugins).to.include.members(['online-norm', 'label-smoothing']);
    expect(result.history.epoch).to.deep.equal([0, 1]);
    expect(result.history.history.loss[1]).to.be.lessThan(result.history.history.loss[0]);
    expect(result.history.history.val_acc).to.have.length(2);
    expect(result.test.acc).to.be.greaterThan(0.9);
    const before = tf.memory().numTensors;
    await runConfig(config, { logger: new SilentLogger(), quiet: true });
    expect(tf.memory().numTensors).to.equal(before);
  });
});

describe('tapfit CLI', () => {
  const cli = path.join(__dirname, '..', 'src', 'cli.js');

  it('fails with exit code 1 and the coded error for a bad config, without a stack trace', () => {
    const file = writeConfig({ model: { preset: 'mnist-cnn' }, data: { dataset: 'mnist' }, optimizer: { name: 'adam', lr: 0 }, training: { epochs: 1 } });
    const r = spawnSync(process.execPath, [cli, 'train', file], { encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/^error \[TAPFIT_E_CONFIG\]: config: option 'optimizer\.lr'/m);
    expect(r.stderr).not.to.match(/\n\s+at /);
  });

  it('prints usage for --help', () => {
    const r = spawnSync(process.execPath, [cli, 'train', '--help'], { encoding: 'utf8' });
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/Usage: tapfit train \[options\] <config>/);
  });
});
