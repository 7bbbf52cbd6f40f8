import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { loadLocalPlugin, loadPlugin, readConfig } from '../src';
import { errorOf, tinyConfig, tmpDir, writeJson, writeModule } from './helpers';

// A file that marks a global and throws when loaded: if it were ever required, the test sees it.
const trap = (dir: string) => writeModule(dir, 'trap.js', "globalThis.__tapfitTrapLoaded = true;\nthrow new Error('the trap file was loaded');\n");
const loaded = () => (globalThis as { __tapfitTrapLoaded?: boolean }).__tapfitTrapLoaded === true;

describe('tapfit train: config plugins are package names only', () => {
  beforeEach(() => delete (globalThis as { __tapfitTrapLoaded?: boolean }).__tapfitTrapLoaded);

  it('a relative path, absolute path or file URL in a config is refused before anything is required', () => {
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
      const err = errorOf(() => loadPlugin(spec, 3, dir));
      expect(err.message).to.match(/^config\.plugins\.3: '.*' is a file path.*--local-plugin <file>/);
    }
    expect(loaded(), 'the trap file was required').to.equal(false);
  });

  it('a spec that is no package name at all is refused too', () => {
    expect(errorOf(() => loadPlugin('node:child_process', 0, process.cwd())).message).to.match(/'node:child_process' is not an npm package name/);
    expect(errorOf(() => loadPlugin('pkg/../../x', 0, process.cwd())).message).to.match(/is not an npm package name/);
  });

  it('--local-plugin loads the file named on purpose (resolved against the current folder)', () => {
    const dir = tmpDir();
    writeModule(dir, 'mine.js', "exports.tapfitPlugin = (o) => ({ name: 'mine', core: '^0.1.0', options: o, apply() {} });\n");
    const p = loadLocalPlugin('./mine.js', dir) as unknown as { name: string; options: unknown };
    expect(p.name).to.equal('mine');
    expect(p.options).to.deep.equal({});
    expect(loadLocalPlugin(pathToFileURL(path.join(dir, 'mine.js')).href).name).to.equal('mine');
    expect(errorOf(() => loadLocalPlugin('./missing.js', dir)).message).to.match(/^--local-plugin \.\/missing\.js: cannot load '.*missing\.js'/);
    writeModule(dir, 'not-a-plugin.js', 'exports.x = 1;\n');
    expect(errorOf(() => loadLocalPlugin('./not-a-plugin.js', dir)).message).to.match(/does not export tapfitPlugin\(options\)/);
  });
});
