import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { compileSnippets, extractSnippets, markdownFiles, repoRoot, type Snippet } from './doc-snippets';

const workDir = path.join(repoRoot, 'examples', '.doc-snippets');
/** A runnable block must finish in seconds: small data, few steps (TAPFIT_SNIPPET_TIMES=1 prints each one's time). */
const SNIPPET_LIMIT_MS = 30_000;

describe('documentation code blocks', function () {
  this.timeout(300_000);
  const snippets: Snippet[] = markdownFiles().flatMap((f) => extractSnippets(f, fs.readFileSync(path.join(repoRoot, f), 'utf8')));
  let compiled: ReturnType<typeof compileSnippets>;

  before(() => {
    compiled = compileSnippets(snippets, workDir);
  });
  after(() => fs.rmSync(workDir, { recursive: true, force: true }));

  it('finds the TypeScript blocks of every README and doc', () => {
    const files = new Set(snippets.map((s) => s.file));
    const packageReadmes = fs.readdirSync(path.join(repoRoot, 'packages')).map((d) => `packages/${d}/README.md`);
    for (const f of ['README.md', 'docs/plugin-authoring.md', 'examples/plugin-label-smoothing/README.md', ...packageReadmes]) expect(files, f).to.include(f);
    expect(snippets.filter((s) => s.run).length, 'runnable blocks').to.be.at.least(10);
  });

  it('every ```ts block compiles as a module of a consumer project (strict, CommonJS)', () => {
    expect(compiled.errors).to.deep.equal([]);
  });

  it('every ```ts run block runs to completion', function () {
    if (compiled.errors.length) this.skip(); // reported by the compile check
    const failures: string[] = [];
    for (const { snippet, js } of compiled.runnable) {
      const started = Date.now();
      const r = spawnSync(process.execPath, [js], { cwd: repoRoot, encoding: 'utf8', timeout: SNIPPET_LIMIT_MS, env: { ...process.env, TAPFIT_BACKEND: 'cpu' } });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (r.status !== 0) failures.push(`${snippet.file}:${snippet.line}: exit ${r.status ?? r.signal} after ${seconds} s (limit ${SNIPPET_LIMIT_MS / 1000} s)\n${(r.stderr || r.stdout).slice(-1500)}`);
      if (process.env.TAPFIT_SNIPPET_TIMES) console.log(`      ${snippet.file}:${snippet.line} ${seconds} s`);
    }
    expect(failures).to.deep.equal([]);
  });

  describe('the extractor', () => {
    it('takes ts/typescript fences with their line, marks `run`, and ignores other languages', () => {
      const md = ['# x', '```ts', 'const a = 1;', '```', '```sh', 'npm test', '```', '```typescript run', 'console.log(1);', '```'].join('\n');
      expect(extractSnippets('x.md', md)).to.deep.equal([
        { file: 'x.md', line: 3, code: 'const a = 1;\n', run: false },
        { file: 'x.md', line: 9, code: 'console.log(1);\n', run: true },
      ]);
    });

    it('names a block with file=, so that later blocks of the same document import it', () => {
      const md = ['```ts file=lib.ts', "export const two = 2;", '```', '```ts run', "import { two } from './lib';", 'if (two !== 2) process.exit(1);', '```'].join('\n');
      const snippets = extractSnippets('y.md', md);
      expect(snippets[0]).to.include({ name: 'lib.ts', run: false });
      const dir = path.join(repoRoot, 'examples', '.doc-snippets-selftest-named');
      const r = compileSnippets(snippets, dir);
      expect(r.errors).to.deep.equal([]);
      expect(spawnSync(process.execPath, [r.runnable[0].js]).status).to.equal(0);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('reports a compile error at its Markdown line', () => {
      const bad: Snippet = { file: 'doc.md', line: 10, code: "import { nope } from '@tapfit/core';\nconst x: number = 'a';\n", run: false };
      const r = compileSnippets([bad], path.join(repoRoot, 'examples', '.doc-snippets-selftest'));
      fs.rmSync(path.join(repoRoot, 'examples', '.doc-snippets-selftest'), { recursive: true, force: true });
      expect(r.errors.join('\n')).to.match(/doc\.md:10: .*has no exported member 'nope'/).and.match(/doc\.md:11: Type 'string' is not assignable to type 'number'/);
    });
  });
});
