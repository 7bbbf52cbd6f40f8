import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { loadLocalPlugin, loadPlugin, readConfig } from '../src';
import { errorOf, rejectionOf, tinyConfig, tmpDir, writeJson, writeModule } from './helpers';

// A file that marks a global and throws when loaded: if it were ever required, the test sees it.
const trap = (dir: string) => writeModule(dir, 'trap.js', "globalThis.__tapfitTrapLoaded = true;\nthrow new Error('the trap file was loaded');\n");
const loaded = () => (globalThis as { __tapfitTrapLoaded?: boolean }).__tapfitTrapLoaded === true;

describe('tapfit train: config plugins are package names only', () => {
  beforeEach(() => delete (globalThis as { __tapfitTrapLoaded?: boolean }).__tapfitTrapLoaded);

  it('a relative path, absolute path or file URL in a config is refused before anything is required', async () => {
    const dir = tmpDir();
    const file = trap(dir);
    const specs = ['./trap.js', '../' + path.basename(dir) + '/trap.js', file, pathToFileURL(file).href];
    const forms: ((spec: string) => unknown)[] = [(s) => s, (s) => [s, {}], (s) => ({ package: s, options: {} })];
    const where = ['plugins.0', 'plugins.0.0', 'plugins.0.package'];
    for (const spec of specs) {
      forms.forEach((form, i) => {
        const err = errorOf(() => readConfig(writeJson(tinyConfig({ plugins: [form(spec)] }), dir)));
        expect(err.code).to.equal('TAPFIT_E_CONFIG');
        expect(err.message).to.contain(`option '${where[i]}' is a file path`).and.contain('--local-plugin <file>').and.contain(`(got '${spec}')`);
      });
      // loadPlugin is exported too: it refuses on its own, without require().
      const err = await rejectionOf(loadPlugin(spec, 3, dir));
      expect(err.message).to.match(/^config\.plugins\.3: '.*' is a file path.*--local-plugin <file>/);
    }
    expect(loaded(), 'the trap file was required').to.equal(false);
  });

  it('a spec that is no package name at all is refused too', async () => {
    expect((await rejectionOf(loadPlugin('node:child_process', 0, process.cwd()))).message).to.match(/'node:child_process' is not an npm package name/);
    expect((await rejectionOf(loadPlugin('pkg/../../x', 0, process.cwd()))).message).to.match(/is not an npm package name/);
  });

  it('--local-plugin loads the file named on purpose (resolved against the current folder)', async () => {
    const dir = tmpDir();
    writeModule(dir, 'mine.js', "exports.tapfitPlugin = (o) => ({ name: 'mine', core: '^0.1.0', options: o, apply() {} });\n");
    const p = (await loadLocalPlugin('./mine.js', dir)) as unknown as { name: string; options: unknown };
    expect(p.name).to.equal('mine');
    expect(p.options).to.deep.equal({});
    expect((await loadLocalPlugin(pathToFileURL(path.join(dir, 'mine.js')).href)).name).to.equal('mine');
    expect((await rejectionOf(loadLocalPlugin('./missing.js', dir))).message).to.match(/^--local-plugin \.\/missing\.js: cannot load '.*missing\.js'.*Check the path/);
    writeModule(dir, 'not-a-plugin.js', 'exports.x = 1;\n');
    expect((await rejectionOf(loadLocalPlugin('./not-a-plugin.js', dir))).message).to.match(/does not export tapfitPlugin\(options\)/);
  });
});

// ESM plugins, in the shapes ESM-only builds publish. They write a file at fitStart, so a test sees that they ran.
const esmPlugin = (name: string, out: string, topLevelAwait = false) =>
  `import { writeFileSync } from 'node:fs';\n${topLevelAwait ? 'await Promise.resolve();\n' : ''}` +
  `export function tapfitPlugin(o) { return { name: '${name}', core: '^0.1.0', options: o, apply({ hooks }) {
    hooks.fitStart.tap('${name}', ({ epochs }) => writeFileSync(${JSON.stringify(out)} + '/${name}.txt', String(epochs)));
  } }; }\n`;

/** An installed ESM package under `<dir>/node_modules/<name>` with the given package.json fields. */
function esmPackage(dir: string, name: string, fields: Record<string, unknown>, topLevelAwait = false): void {
  writeModule(dir, `node_modules/${name}/package.json`, JSON.stringify({ name, version: '1.0.0', type: 'module', ...fields }));
  writeModule(dir, `node_modules/${name}/index.js`, esmPlugin(name, dir, topLevelAwait));
}

describe('tapfit train: ESM plugin packages and files', () => {
  it('loads an ESM-only package (exports with an import entry only), one with top-level await, and ESM local files with and without it', async () => {
    const dir = tmpDir();
    esmPackage(dir, 'esm-import-only', { exports: { '.': { import: './index.js' } } });
    esmPackage(dir, 'esm-tla', { exports: './index.js' }, true);
    esmPackage(dir, 'esm-nested', { exports: { node: { import: './index.js' }, browser: './browser.js' } });
    for (const pkg of ['esm-import-only', 'esm-tla', 'esm-nested']) {
      const p = (await loadPlugin([pkg, { k: 1 }], 0, dir)) as unknown as { name: string; options: unknown };
      expect(p.name, pkg).to.equal(pkg);
      expect(p.options, pkg).to.deep.equal({ k: 1 });
    }
    writeModule(dir, 'local.mjs', esmPlugin('local', dir));
    writeModule(dir, 'local-tla.mjs', esmPlugin('local-tla', dir, true));
    expect((await loadLocalPlugin('./local.mjs', dir)).name).to.equal('local');
    expect((await loadLocalPlugin('./local-tla.mjs', dir)).name).to.equal('local-tla');
  });

  it('an installed package that fails to load says so with its error, not "npm install"', async () => {
    const dir = tmpDir();
    writeModule(dir, 'node_modules/throws-at-load/package.json', JSON.stringify({ name: 'throws-at-load', main: 'index.js' }));
    writeModule(dir, 'node_modules/throws-at-load/index.js', "throw new Error('boom at load');\n");
    esmPackage(dir, 'esm-missing-dep', { exports: { import: './index.js' } });
    writeModule(dir, 'node_modules/esm-missing-dep/index.js', "import 'not-installed-dependency-x';\nexport const tapfitPlugin = () => ({});\n");
    writeModule(dir, 'node_modules/no-entry/package.json', JSON.stringify({ name: 'no-entry', exports: { browser: './index.js' } }));
    const cases: [string, RegExp][] = [
      ['throws-at-load', /^config\.plugins\.0: plugin package 'throws-at-load' is installed \(.*index\.js\) but failed to load: boom at load$/],
      ['esm-missing-dep', /^config\.plugins\.0: plugin package 'esm-missing-dep' is installed \(.*index\.js\) but failed to load: .*not-installed-dependency-x/],
      ['no-entry', /^config\.plugins\.0: plugin package 'no-entry' is installed \(.*no-entry\) but has no entry to load .*"exports" entry for require or import/],
    ];
    for (const [pkg, message] of cases) {
      const err = await rejectionOf(loadPlugin(pkg, 0, dir));
      expect(err.code, pkg).to.equal('TAPFIT_E_CONFIG');
      expect(err.message, pkg).to.match(message).and.not.contain('npm install');
    }
    writeModule(dir, 'bad.mjs', "await Promise.resolve();\nthrow new Error('local boom');\n");
    const local = await rejectionOf(loadLocalPlugin('./bad.mjs', dir));
    expect(local.message).to.match(/^--local-plugin \.\/bad\.mjs: '.*bad\.mjs' failed to load: local boom$/).and.not.contain('Check the path');
  });

  it('`tapfit train` runs ESM-only config plugins and ESM --local-plugin files with top-level await', () => {
    const dir = tmpDir();
    esmPackage(dir, 'esm-import-only', { exports: { '.': { import: './index.js' } } });
    esmPackage(dir, 'esm-tla', { exports: './index.js' }, true);
    writeModule(dir, 'local-tla.mjs', esmPlugin('local-tla', dir, true));
    writeJson(tinyConfig({ training: { epochs: 1, batchSize: 50 }, plugins: ['esm-import-only', 'esm-tla'] }), dir);
    const cli = path.join(__dirname, '..', 'src', 'cli.js');
    const r = spawnSync(process.execPath, [cli, 'train', 'config.json', '--local-plugin', './local-tla.mjs'], { encoding: 'utf8', cwd: dir });
    expect(r.stderr).not.to.match(/error/i);
    expect(r.status).to.equal(0);
    for (const name of ['esm-import-only', 'esm-tla', 'local-tla']) expect(fs.readFileSync(path.join(dir, `${name}.txt`), 'utf8'), name).to.equal('1');
  });
});
