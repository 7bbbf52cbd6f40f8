import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { claimCheckpointFolder, CORE_VERSION, WRITER_LOCK } from '@tapfit/core';
import { expect } from 'chai';
import { tapfitErrorLine } from '../src/cli-error';
import { wholeNumberFlag } from '../src/cli-flags';
import { tinyConfig, tmpDir, writeJson, writeModule } from './helpers';

const cli = path.join(__dirname, '..', 'src', 'cli.js');
const tapfit = (args: string[], cwd?: string) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', cwd });

describe('tapfit CLI: flags', () => {
  it('--epochs with a non-number fails naming the flag and the value, before any training', () => {
    const file = writeJson(tinyConfig({ training: { epochs: 1, batchSize: 50 } }));
    for (const bad of ['abc', '3x', '']) {
      const r = tapfit(['train', file, '--epochs', bad]);
      expect(r.status, bad).to.equal(1);
      expect(r.stderr).to.contain(`option '-e, --epochs <n>' argument '${bad}' is invalid. It must be a whole number >= 1.`);
      expect(r.stdout).not.to.match(/epoch 1:/);
    }
  });

  it('--version (and -V) prints the version of tapfit and of the @tapfit/core it runs on, exit 0', () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const r = tapfit([flag]);
      expect(r.stderr, flag).to.equal('');
      expect(r.status, flag).to.equal(0);
      expect(r.stdout, flag).to.equal(`${version} (@tapfit/core ${CORE_VERSION})\n`);
    }
  });

  it('the whole-number parser takes digits only', () => {
    const parse = wholeNumberFlag(1);
    expect(parse('7')).to.equal(7);
    expect(parse(' 12 ')).to.equal(12);
    for (const bad of ['abc', '', '0', '2.5', '1e3', '-1', '0x10', '2.0', 'NaN', '99999999999999999999']) expect(() => parse(bad), bad).to.throw(/must be a whole number >= 1/);
  });

  it('--backend takes only the known names', () => {
    const r = tapfit(['train', writeJson(tinyConfig()), '--backend', 'gpu']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.contain("argument 'gpu' is invalid. Allowed choices are auto, tensorflow, webgpu, wasm, cpu.");
  });

  it('--local-plugin (repeatable) loads local files on purpose; --epochs overrides the config', () => {
    const dir = tmpDir();
    writeJson(tinyConfig({ training: { epochs: 3, batchSize: 50 } }), dir);
    const plugin = (name: string) =>
      `exports.tapfitPlugin = () => ({ name: '${name}', core: '^0.1.0', apply({ hooks }) {
        hooks.fitStart.tap('${name}', ({ epochs }) => require('fs').writeFileSync(${JSON.stringify(dir)} + '/${name}.txt', String(epochs)));
      } });\n`;
    writeModule(dir, 'one.js', plugin('one'));
    writeModule(dir, 'sub/two.js', plugin('two'));
    const r = tapfit(['train', 'config.json', '--local-plugin', './one.js', '--local-plugin', 'sub/two.js', '--epochs', '1'], dir);
    expect(r.stderr).not.to.match(/error|warn/i);
    expect(r.status).to.equal(0);
    expect(fs.readFileSync(path.join(dir, 'one.txt'), 'utf8')).to.equal('1');
    expect(fs.readFileSync(path.join(dir, 'two.txt'), 'utf8')).to.equal('1');
    expect(r.stdout).to.match(/epoch 1: loss/).and.not.match(/epoch 2:/);
  });

  it('a plugin (the only way a config adds behaviour) can stop training early with trainer.stop(): the run ends after that epoch, is evaluated and exits 0', () => {
    const dir = tmpDir();
    writeJson(tinyConfig({ training: { epochs: 4, batchSize: 50 } }), dir);
    // Early stopping as a config can have it: stop once two epochs have ended.
    writeModule(
      dir,
      'early-stopping.js',
      `exports.tapfitPlugin = () => ({ name: 'early-stopping', core: '^0.1.0', apply({ hooks, trainer }) {
        hooks.epochEnd.tap('early-stopping', ({ epoch }) => { if (epoch >= 1) trainer.stop(); });
      } });\n`,
    );
    const r = tapfit(['train', 'config.json', '--local-plugin', './early-stopping.js'], dir);
    expect(r.stderr).not.to.match(/error|warn/i);
    expect(r.status).to.equal(0);
    expect(r.stdout).to.match(/epoch 2: loss/).and.not.match(/epoch 3:/);
    expect(r.stdout).to.match(/test: loss [\d.]+, accuracy/);
  });
});

describe('tapfit CLI: errors', () => {
  it('a checkpoint folder the user cannot write to (permissions, a read-only mount) prints as `error [TAPFIT_E_CHECKPOINT]` naming it, exit 1, no stack', () => {
    const dir = tmpDir();
    const checkpoints = path.join(dir, 'ckpt');
    fs.mkdirSync(checkpoints);
    // The tests run as root, which permissions do not stop: the lock file (the first file written there) fails as a read-only mount does.
    const readOnly = writeModule(
      dir,
      'read-only.js',
      `const fs = require('node:fs'); const write = fs.writeFileSync;
      fs.writeFileSync = (p, ...rest) => { if (String(p).startsWith(${JSON.stringify(checkpoints)})) throw Object.assign(new Error("EROFS: read-only file system, open '" + p + "'"), { code: 'EROFS' }); return write(p, ...rest); };\n`,
    );
    const file = writeJson(tinyConfig({ checkpoint: { dir: checkpoints } }), dir);
    const r = spawnSync(process.execPath, ['--require', readOnly, cli, 'train', file], { encoding: 'utf8' });
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(new RegExp(`^error \\[TAPFIT_E_CHECKPOINT\\]: checkpoint: cannot save under '${checkpoints}': it is on a read-only file system \\(EROFS: .*\\)\\. Save to a folder you can write to; .*save into a new folder\\.\\n$`));
    expect(r.stdout).not.to.match(/epoch 1:/);
  });

  it('a coded error from another copy of @tapfit/core prints as `error [CODE]: message`, exit 1, no stack', () => {
    // A plugin package that brought its own @tapfit/core: its TapfitError is another class.
    const dir = tmpDir();
    writeModule(dir, 'node_modules/tapfit-plugin-own-core/package.json', JSON.stringify({ name: 'tapfit-plugin-own-core', main: 'index.js' }));
    writeModule(
      dir,
      'node_modules/tapfit-plugin-own-core/index.js',
      `class TapfitError extends Error { constructor(code, message) { super(message); this.code = code; this.name = 'TapfitError'; } }
      exports.tapfitPlugin = (o) => { throw new TapfitError('TAPFIT_E_CONFIG', "own-core: option 'rate' must be > 0 (got " + o.rate + ')'); };\n`,
    );
    const file = writeJson(tinyConfig({ plugins: [['tapfit-plugin-own-core', { rate: -1 }]] }), dir);
    const r = tapfit(['train', file]);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.equal("error [TAPFIT_E_CONFIG]: own-core: option 'rate' must be > 0 (got -1)\n");
  });

  it('a plugin package with its own copy of @tapfit/core is refused before training, naming it and the fix', () => {
    // Inside the repository, so that the copy's own dependencies resolve from the workspace.
    const dir = fs.mkdtempSync(path.join(__dirname, '..', '..', '.single-copy-'));
    try {
      const own = path.join(dir, 'node_modules/tapfit-plugin-own-core');
      writeModule(own, 'package.json', JSON.stringify({ name: 'tapfit-plugin-own-core', main: 'index.js' }));
      writeModule(own, 'index.js', "const { Stage } = require('@tapfit/core');\nexports.tapfitPlugin = () => ({ name: 'own-core', core: '*', apply: ({ hooks }) => hooks.backward.tap({ stage: Stage.TRANSFORM }, (g) => g) });\n");
      const core = path.dirname(require.resolve('@tapfit/core/package.json'));
      fs.cpSync(path.join(core, 'dist/src'), path.join(own, 'node_modules/@tapfit/core/dist/src'), { recursive: true });
      fs.copyFileSync(path.join(core, 'package.json'), path.join(own, 'node_modules/@tapfit/core/package.json'));
      const r = tapfit(['train', writeJson(tinyConfig({ plugins: ['tapfit-plugin-own-core'] }), dir)]);
      expect(r.status).to.equal(1);
      expect(r.stderr).to.match(/^error \[TAPFIT_E_DUPLICATE_PACKAGE\]: config\.plugins\.0: plugin package 'tapfit-plugin-own-core': two copies .*@tapfit\/core from .*tapfit-plugin-own-core\/node_modules\/@tapfit\/core \(0\.1\.0\).*peerDependencies/);
      expect(r.stdout).not.to.match(/epoch 1:/);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a config composing conflicting plugins fails with the declared reason before a backend is picked or data loaded', () => {
    const plugins = [['@tapfit/plugin-pipeline', { boundaries: ['logits'] }], ['@tapfit/plugin-brakes', { delay: 2 }]];
    const r = tapfit(['train', writeJson(tinyConfig({ plugins }))]);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.match(/^error \[TAPFIT_E_PLUGIN_CONFLICTS\]: plugins 'brakes' and 'pipeline' cannot be used together: the pipeline already delays each stage's gradients; brakes' delay of 2 would stack on top\..* Remove one of them\.\n$/);
    expect(r.stdout, 'nothing ran: no backend line, no epoch').to.equal('');
  });

  it('a run into a checkpoint folder that another live run holds is refused before it trains, naming the folder, that run and the fix; nothing there changes', () => {
    const dir = tmpDir();
    const file = writeJson(tinyConfig({ checkpoint: { dir: 'ckpt' } }), dir);
    const ckpt = path.join(dir, 'ckpt');
    const other = claimCheckpointFolder(ckpt); // this test process plays the other run
    try {
      const r = tapfit(['train', file]);
      expect(r.status).to.equal(1);
      expect(r.stderr).to.match(new RegExp(`^error \\[TAPFIT_E_CHECKPOINT\\]: checkpoint folder '${ckpt}' is in use by another tapfit run \\(pid ${process.pid}, since .*\\)`));
      expect(r.stderr).to.contain('one run per checkpoint folder');
      expect(r.stdout).not.to.match(/epoch 1:/);
      expect(fs.readdirSync(ckpt)).to.deep.equal([WRITER_LOCK]);
    } finally {
      other.release();
    }
    const r = tapfit(['train', file]);
    expect(r.status, r.stderr).to.equal(0);
    expect(fs.readdirSync(ckpt).sort(), 'the run gave the folder up when it ended').to.deep.equal(['LATEST', 'step-30', 'step-45']);
  });

  it('tapfitErrorLine matches the TAPFIT_E_ code, not the class', () => {
    expect(tapfitErrorLine({ code: 'TAPFIT_E_PLUGIN_INVALID', message: 'm' })).to.equal('error [TAPFIT_E_PLUGIN_INVALID]: m');
    expect(tapfitErrorLine(Object.assign(new Error('no such file'), { code: 'ENOENT' }))).to.equal(undefined);
    expect(tapfitErrorLine(new Error('bug'))).to.equal(undefined);
    expect(tapfitErrorLine(undefined)).to.equal(undefined);
    expect(tapfitErrorLine('TAPFIT_E_CONFIG')).to.equal(undefined);
  });
});
