import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from './doc-snippets';
import { npm, userNpmEnv } from './npm-env';

// Journey (b): a plain TF.js project outside the workspace installs @tapfit/core and
// @tapfit/plugin-lora from packed tarballs, exactly as examples/plain-tfjs-project/README.md
// says, keeps its model.fit code, and runs as CommonJS and as ESM with one copy of tfjs.
// About 20-30 s: two `npm pack` builds (no-ops after `tsc -b`), an install that takes
// tfjs and the other dependencies from the npm cache (--prefer-offline: the registry only
// for what the cache lacks), two short trainings.

const example = path.join(repoRoot, 'examples', 'plain-tfjs-project');

/** Every installed copy of the packages that must be single, by name: their folders. */
function copiesOf(nodeModules: string, names: RegExp): Map<string, string[]> {
  const found = new Map<string, string[]>();
  const walk = (dir: string) => {
    if (!fs.existsSync(dir)) return;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!e.isDirectory()) continue;
      const scoped = e.name.startsWith('@');
      for (const name of scoped ? fs.readdirSync(path.join(dir, e.name)).map((n) => `${e.name}/${n}`) : [e.name]) {
        const pkg = path.join(dir, name);
        if (names.test(name)) found.set(name, [...(found.get(name) ?? []), pkg]);
        walk(path.join(pkg, 'node_modules'));
      }
    }
  };
  walk(nodeModules);
  return found;
}

describe('journey: a plain TF.js project installs a plugin from packed tarballs', function () {
  this.timeout(300_000);
  let work: string;
  let app: string;

  before(() => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-consumer-'));
    const packs = path.join(work, 'packs');
    fs.mkdirSync(packs);
    const packed = JSON.parse(npm(['pack', '-w', '@tapfit/core', '-w', '@tapfit/plugin-lora', '--pack-destination', packs, '--json'], repoRoot)) as { filename: string }[];
    app = path.join(work, 'plain-tfjs-project');
    fs.cpSync(example, app, { recursive: true, filter: (src) => !/node_modules|README\.md$/.test(src) });
    npm(['install', '--prefer-offline', '--no-audit', '--no-fund', ...packed.map((p) => path.join(packs, p.filename))], app);
  });
  after(() => fs.rmSync(work, { recursive: true, force: true }));

  it('installs outside the workspace with one copy of @tapfit/core and of each tfjs package', () => {
    expect(path.relative(repoRoot, app).startsWith('..')).to.equal(true);
    const manifest = JSON.parse(fs.readFileSync(path.join(app, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    expect(manifest.dependencies['@tapfit/core']).to.match(/^file:.*tapfit-core-0\.1\.0\.tgz$/);
    expect(manifest.dependencies['@tapfit/plugin-lora']).to.match(/^file:.*tapfit-plugin-lora-0\.1\.0\.tgz$/);
    const copies = copiesOf(path.join(app, 'node_modules'), /^@tapfit\/|^@tensorflow\//);
    expect([...copies.keys()]).to.include.members(['@tapfit/core', '@tapfit/plugin-lora', '@tensorflow/tfjs', '@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm']);
    for (const [name, dirs] of copies) expect(dirs, name).to.have.length(1);
    // The tarball holds the build: what the package's exports point at is there.
    expect(fs.existsSync(path.join(app, 'node_modules/@tapfit/core/dist/src/testing/index.d.ts'))).to.equal(true);
  });

  for (const file of ['app.cjs', 'app.mjs']) {
    it(`${file}: model.fit pretraining, then LoRA finetuning with model.fit, on wasm`, () => {
      const env = userNpmEnv();
      delete env.TAPFIT_BACKEND;
      const r = spawnSync(process.execPath, [file], { cwd: app, encoding: 'utf8', env, timeout: 120_000 });
      expect(r.status, r.stderr).to.equal(0);
      expect(r.stderr).to.not.match(/already registered|warn/i);
      const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { module: string; backend: string; trainableParams: number; loss: number[]; acc: number[] };
      expect(out.module).to.equal(file.endsWith('.mjs') ? 'esm' : 'commonjs');
      expect(out.backend).to.equal('wasm');
      expect(out.trainableParams).to.equal(4 * (16 + 64) + (64 * 3 + 3)); // fc1's adapters + the head
      expect(out.loss[out.loss.length - 1]).to.be.below(out.loss[0] / 10);
      expect(out.acc[out.acc.length - 1]).to.be.above(0.9);
    });
  }
});
