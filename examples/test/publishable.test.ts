import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'chai';
import { repoRoot } from './doc-snippets';
import { publishablePackages } from './publishable';

interface PackResult {
  name: string;
  version: string;
  files: { path: string }[];
}

/** What `npm pack` would put in each package's tarball (scripts skipped: the build already ran). */
function packLists(): PackResult[] {
  const workspaces = publishablePackages().flatMap((p) => ['-w', path.relative(repoRoot, p.dir)]);
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts', ...workspaces], { cwd: repoRoot, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out) as PackResult[];
}

/** A published file: the manifest, README, LICENSE, compiled library code, or its TypeScript sources. */
const ALLOWED = /^(package\.json|README\.md|LICENSE|dist\/src\/.+\.(js|d\.ts|js\.map|d\.ts\.map)|src\/.+\.ts)$/;

describe('publishable packages', function () {
  this.timeout(120_000);
  const packages = publishablePackages();
  let packs: PackResult[];
  before(() => {
    packs = packLists();
  });

  it('lists every package under packages/', () => {
    expect(packages.map((p) => p.name)).to.include.members(['@tapfit/core', '@tapfit/plugin-lora', '@tapfit/plugin-onlinenorm', '@tapfit/plugin-brakes']);
    expect(packs.map((p) => p.name)).to.deep.equal(packages.map((p) => p.name));
  });

  it('each tarball holds only the manifest, README, LICENSE, dist/src and src: no tests, no build info', () => {
    for (const pack of packs) {
      const files = pack.files.map((f) => f.path);
      expect(files.filter((f) => !ALLOWED.test(f)), pack.name).to.deep.equal([]);
      expect(files, pack.name).to.include.members(['package.json', 'README.md', 'LICENSE', 'dist/src/index.js', 'dist/src/index.d.ts', 'src/index.ts']);
      expect(files.filter((f) => /(^|\/)test\/|\.test\.|tsbuildinfo/.test(f)), pack.name).to.deep.equal([]);
    }
  });

  it("every source map's sources ship with it", () => {
    for (const pack of packs) {
      const files = new Set(pack.files.map((f) => f.path));
      const dir = packages.find((p) => p.name === pack.name)!.dir;
      for (const map of [...files].filter((f) => f.endsWith('.map'))) {
        const { sources } = JSON.parse(fs.readFileSync(path.join(dir, map), 'utf8')) as { sources: string[] };
        for (const s of sources) expect(files.has(path.posix.normalize(path.posix.join(path.posix.dirname(map), s))), `${pack.name}: ${map} -> ${s}`).to.equal(true);
      }
    }
  });

  it('each manifest has exports, files, peer dependencies, a prepack build, engines and the MIT license', () => {
    for (const { name, manifest, dir } of packages) {
      expect(manifest.exports, name).to.have.property('.');
      expect(manifest.files, name).to.include.members(['dist/src', 'src']);
      expect(manifest.peerDependencies, name).to.have.property('@tensorflow/tfjs');
      if (name !== '@tapfit/core') expect(manifest.peerDependencies, name).to.have.property('@tapfit/core');
      expect(manifest.dependencies ?? {}, `${name} must not depend on its peers`).to.not.have.any.keys('@tapfit/core', '@tensorflow/tfjs', '@tensorflow/tfjs-core');
      expect((manifest.scripts as Record<string, string>).prepack, name).to.match(/rmSync\('dist'.*&& tsc -b$/); // a clean build: stale outputs of moved files must not ship
      expect(manifest.license, name).to.equal('MIT');
      expect(manifest.engines, name).to.have.property('node');
      expect(fs.readFileSync(path.join(dir, 'LICENSE'), 'utf8'), name).to.match(/^MIT License/);
    }
  });

  it('every subpath export has types under moduleResolution node10 (typesVersions)', () => {
    for (const { name, manifest } of packages) {
      const subpaths = Object.keys(manifest.exports as object).filter((k) => k !== '.' && !k.endsWith('.json'));
      const mapped = ((manifest.typesVersions as Record<string, Record<string, string[]>> | undefined)?.['*']) ?? {};
      for (const s of subpaths) expect(mapped, `${name} ${s}`).to.have.property(s.replace(/^\.\//, ''));
    }
  });

  it('each README says what to npm install', () => {
    for (const { name, dir, manifest } of packages) {
      const readme = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
      const install = /^## Install\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1] ?? '';
      expect(install, `${name}: an '## Install' section`).to.not.equal('');
      const peers = Object.keys((manifest.peerDependencies as object) ?? {}).filter((p) => !(manifest.peerDependenciesMeta as Record<string, { optional?: boolean }> | undefined)?.[p]?.optional);
      for (const p of [name, ...peers]) expect(install, `${name}: the install section names ${p}`).to.contain(p);
      expect(install, `${name}: how to install from a clone`).to.contain('npm pack');
    }
  });

  it('lerna-lite versions each package independently (lerna.json: independent), in a scratch git copy', () => {
    // The manifests and lerna.json in a fresh repository: a first release tags every package,
    // then a change to one package bumps that package alone.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tapfit-version-'));
    const lerna = [path.join(repoRoot, 'node_modules/@lerna-lite/cli/dist/cli.js'), 'version', 'patch', '--yes', '--no-push'];
    const run = (cmd: string, args: string[]) => execFileSync(cmd, args, { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@example.invalid', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@example.invalid' } });
    try {
      for (const f of ['package.json', 'lerna.json']) fs.copyFileSync(path.join(repoRoot, f), path.join(dir, f));
      for (const p of packages) {
        fs.mkdirSync(path.join(dir, path.relative(repoRoot, p.dir)), { recursive: true });
        fs.copyFileSync(path.join(p.dir, 'package.json'), path.join(dir, path.relative(repoRoot, p.dir), 'package.json'));
      }
      run('git', ['init', '-q']);
      run('git', ['add', '-A']);
      run('git', ['commit', '-qm', 'init']);
      run(process.execPath, lerna);
      const versions = () => Object.fromEntries(packages.map((p) => [p.name, JSON.parse(fs.readFileSync(path.join(dir, path.relative(repoRoot, p.dir), 'package.json'), 'utf8')).version]));
      const bump = (v: string) => v.replace(/\d+$/, (d) => String(Number(d) + 1));
      expect(versions()).to.deep.equal(Object.fromEntries(packages.map((p) => [p.name, bump(p.version)])));
      expect(run('git', ['tag']).trim().split('\n').sort()).to.deep.equal(packages.map((p) => `${p.name}@${bump(p.version)}`).sort());

      const lora = path.join(dir, 'packages/plugin-lora/package.json');
      fs.writeFileSync(lora, fs.readFileSync(lora, 'utf8').replace('"description": "', '"description": "(changed) '));
      run('git', ['commit', '-qam', 'change plugin-lora']);
      run(process.execPath, lerna);
      const after = versions();
      for (const p of packages) expect(after[p.name], p.name).to.equal(p.name === '@tapfit/plugin-lora' ? bump(bump(p.version)) : bump(p.version));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
