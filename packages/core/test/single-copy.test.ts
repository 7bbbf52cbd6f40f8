import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { loadedCoreCopies, loadedTfjsCopies } from '../src';

// A plugin folder with its own node_modules (what loading a plugin by path does): a real
// second copy of @tapfit/core (this package's built dist) or of @tensorflow/tfjs-core (the
// installed bundle), in a folder inside the package so its other dependencies resolve from
// the workspace. Each case runs in a fresh process: a second copy loaded here would make
// every later test's trainer refuse.

const packageDir = path.resolve(__dirname, '../..');
const coreDist = path.join(packageDir, 'dist/src');
const tfjsCore = path.dirname(require.resolve('@tensorflow/tfjs-core/package.json'));

function pluginFolder(copies: { core?: boolean; tfjsCore?: boolean }): string {
  const dir = fs.mkdtempSync(path.join(packageDir, '.single-copy-'));
  const modules = path.join(dir, 'my-plugin', 'node_modules');
  fs.mkdirSync(modules, { recursive: true });
  fs.writeFileSync(path.join(dir, 'my-plugin', 'package.json'), JSON.stringify({ name: 'my-plugin', version: '1.0.0', main: 'index.js' }));
  if (copies.core) {
    const to = path.join(modules, '@tapfit/core');
    fs.cpSync(coreDist, path.join(to, 'dist/src'), { recursive: true });
    fs.copyFileSync(path.join(packageDir, 'package.json'), path.join(to, 'package.json'));
  }
  if (copies.tfjsCore) {
    const to = path.join(modules, '@tensorflow/tfjs-core');
    fs.mkdirSync(path.join(to, 'dist'), { recursive: true });
    fs.copyFileSync(path.join(tfjsCore, 'package.json'), path.join(to, 'package.json'));
    fs.copyFileSync(path.join(tfjsCore, 'dist/tf-core.node.js'), path.join(to, 'dist/tf-core.node.js'));
  }
  // The plugin imports what it was given: its own copies when present.
  fs.writeFileSync(
    path.join(dir, 'my-plugin', 'index.js'),
    [
      copies.core ? "const { Stage } = require('@tapfit/core');" : 'const Stage = { TRANSFORM: -1000 };',
      copies.tfjsCore ? "require('@tensorflow/tfjs-core');" : '',
      "exports.tapfitPlugin = () => ({ name: 'my-plugin', core: '*', apply: ({ hooks }) => hooks.backward.tap({ stage: Stage.TRANSFORM }, (g) => g) });",
    ].join('\n'),
  );
  return dir;
}

/** Loads the app's core, then the plugin, then builds a trainer with it; prints what happened as JSON. */
function runApp(dir: string): Promise<{ code?: string; message?: string; built?: boolean; cores?: number; dir: string }> {
  const real = fs.realpathSync(dir);
  const script = `
    const core = require(${JSON.stringify(coreDist)});
    const { testTrainer } = require(${JSON.stringify(path.join(coreDist, 'testing'))});
    const plugin = require(${JSON.stringify(path.join(dir, 'my-plugin'))}).tapfitPlugin();
    let out;
    try { testTrainer({ plugins: [plugin] }).dispose(); out = { built: true }; } catch (e) { out = { code: e.code, message: e.message }; }
    out.cores = core.loadedCoreCopies().length;
    console.log(JSON.stringify(out));`;
  return new Promise((resolve, reject) => {
    execFile(process.execPath, ['-e', script], { cwd: packageDir, timeout: 60_000 }, (err, stdout, stderr) => {
      fs.rmSync(dir, { recursive: true, force: true });
      if (err) return reject(new Error(`${err.message}\n${stderr}`));
      resolve({ ...JSON.parse(stdout.trim().split('\n').pop()!), dir: real });
    });
  });
}

describe('plugin registration: one copy of @tapfit/core and tfjs', function () {
  this.timeout(120_000);

  it('this process has one copy of each', () => {
    expect(loadedCoreCopies()).to.have.length(1);
    expect(loadedCoreCopies()[0].dir).to.equal(fs.realpathSync(packageDir));
    for (const [name, copies] of loadedTfjsCopies()) expect(copies, name).to.have.length(1);
    expect([...loadedTfjsCopies().keys()]).to.include('@tensorflow/tfjs-core');
  });

  it('refuses a plugin that brought its own @tapfit/core, naming both folders and the fix', async () => {
    const r = await runApp(pluginFolder({ core: true }));
    expect(r.cores).to.equal(2);
    expect(r.code).to.equal('TAPFIT_E_DUPLICATE_PACKAGE');
    expect(r.message).to.contain("registering plugin(s) 'my-plugin'");
    expect(r.message).to.contain(`@tapfit/core from ${fs.realpathSync(packageDir)} (`);
    expect(r.message).to.contain(path.join(r.dir, 'my-plugin/node_modules/@tapfit/core'));
    expect(r.message).to.contain('peerDependencies').and.contain('npm install <path to the .tgz>').and.contain('npm link');
  });

  it('refuses a plugin that brought its own @tensorflow/tfjs-core', async () => {
    const r = await runApp(pluginFolder({ tfjsCore: true }));
    expect(r.code).to.equal('TAPFIT_E_DUPLICATE_PACKAGE');
    expect(r.message).to.contain(`@tensorflow/tfjs-core from ${tfjsCore} (4.22.0) and ${path.join(r.dir, 'my-plugin/node_modules/@tensorflow/tfjs-core')} (4.22.0)`);
  });

  it('accepts the same plugin when it uses the app’s copies (peer dependencies)', async () => {
    const r = await runApp(pluginFolder({}));
    expect(r).to.include({ built: true, cores: 1 });
  });
});
