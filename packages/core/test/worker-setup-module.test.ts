import { expect } from 'chai';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { importSetupModule, isSetupModuleSpec } from '../src';

const cjsOpaque = path.join(__dirname, 'fixtures', 'setup-cjs-opaque.js');
const esmTla = path.join(__dirname, 'fixtures', 'setup-esm-tla.mjs');

describe("worker setup modules (the plugins' setupModule option)", () => {
  it('accepts an absolute path or a file: URL, refuses a relative path or a bare name (a worker would resolve them from its own file)', () => {
    expect(isSetupModuleSpec(path.resolve('setup.js'))).to.equal(true);
    expect(isSetupModuleSpec(pathToFileURL(path.resolve('setup.mjs')).href)).to.equal(true);
    for (const spec of ['./setup.js', 'setup.js', '../x/setup.mjs', 'some-package']) expect(isSetupModuleSpec(spec), spec).to.equal(false);
  });

  it("a CommonJS module whose exports Node's lexer cannot see: its module.exports, the very object require() gives", async () => {
    const required = require(cjsOpaque) as Record<string, unknown>;
    for (const spec of [cjsOpaque, pathToFileURL(cjsOpaque).href]) {
      const mod = await importSetupModule<{ setup: (ctx: { workerIndex: number }) => string; loss: string }>(spec);
      expect(mod.setup, spec).to.equal(required.setup);
      expect(mod.loss, spec).to.equal(required.loss);
    }
  });

  it('an ESM module with top-level await, by path or file: URL: its named exports, over its default object', async () => {
    for (const spec of [esmTla, pathToFileURL(esmTla).href]) {
      const ns = (await import(pathToFileURL(esmTla).href)) as { setup: () => string; loss: string; default: { onlyInDefault: boolean } };
      const mod = await importSetupModule<{ setup: () => string; loss: string; onlyInDefault: boolean }>(spec);
      expect(mod.setup, spec).to.equal(ns.setup);
      expect(mod.loss, 'the named export wins').to.equal(ns.loss);
      expect(mod.onlyInDefault, "the default object's other keys come through").to.equal(ns.default.onlyInDefault);
    }
  });

  it("a path as require() resolves it: without its extension, or a folder with an index.js (what worked before workers loaded with import())", async () => {
    const required = require(cjsOpaque) as Record<string, unknown>;
    const withoutExtension = cjsOpaque.replace(/\.js$/, '');
    const mod = await importSetupModule<{ setup: unknown; loss: unknown }>(withoutExtension);
    expect(mod.setup).to.equal(required.setup);
    const folder = path.join(__dirname, 'fixtures', 'setup-folder');
    const fromFolder = await importSetupModule<{ loss: unknown }>(folder);
    expect(fromFolder.loss).to.equal((require(folder) as { loss: unknown }).loss);
  });
});
