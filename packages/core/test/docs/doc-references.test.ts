import { expect } from 'chai';
import { findReferenceProblems, numberedHeadings, repositoryDocs, repositoryRoot, repositoryTextFiles, type TextFile } from './doc-references';

const docs = new Map([
  ['techniques.md', '# Techniques\n\n## 0. Conventions\n\n### 0.1 Momentum\n\n## 4. Adaptive Braking\n\n### 4.2 Update rule\n'],
  ['backends.md', '# Backends\n\n## 4. Memory accounting\n'],
]);
const file = (path: string, text: string): TextFile => ({ path, text });
const problems = (...files: TextFile[]) => findReferenceProblems(files, docs).map((p) => `${p.file}:${p.line}: ${p.message}`);

describe('documentation references', () => {
  describe('the checker', () => {
    it('accepts citations of existing documents and sections, in code and in markdown links', () => {
      expect(
        problems(
          file('packages/a/src/x.ts', '// v of docs/techniques.md §0.1 (PyTorch form)\n/** (docs/techniques.md §4.2 and §0, §4) */'),
          file('packages/a/README.md', 'see [docs/backends.md §4](../../docs/backends.md) and docs/techniques.md §4.2/§0.1'),
          file('docs/design.md', 'momentum (techniques.md §0.1); the paper (§9.9 of it) is not ours'),
        ),
      ).to.deep.equal([]);
    });

    it('reports references to notes outside the repository', () => {
      const outside = ['..', ['sha', 'red'].join(''), 'docs'];
      expect(problems(file('packages/a/src/x.ts', `a\n// see ${outside.join('/')}/techniques.md`))).to.deep.equal([
        `packages/a/src/x.ts:2: refers to '${outside.slice(1).join('/')}', which is not part of the repository; cite docs/techniques.md or docs/backends.md instead`,
        `packages/a/src/x.ts:2: refers to '${outside.slice(0, 2).join('/')}', which is not part of the repository; cite docs/techniques.md or docs/backends.md instead`,
      ]);
      expect(problems(file('bench/b.ts', '// (backend-notes §3)'), file('docs/d.md', 'anchors.md has the evidence'))).to.have.length(2);
    });

    it('reports a cited docs/*.md that does not exist, also behind a relative path', () => {
      expect(problems(file('README.md', 'see docs/missing.md'), file('packages/a/README.md', '[x](../../docs/gone.md)'))).to.deep.equal([
        'README.md:1: cites docs/missing.md, which does not exist',
        'packages/a/README.md:1: cites docs/gone.md, which does not exist',
      ]);
    });

    it('reports a section the cited document does not have', () => {
      expect(problems(file('packages/a/test/t.ts', "describe('invariants (docs/techniques.md §4.5 item 6, §4.2)'"))).to.deep.equal([
        'packages/a/test/t.ts:1: cites techniques.md §4.5, but techniques.md has no section 4.5',
      ]);
      expect(problems(file('docs/design.md', 'facts (backends.md §2)'))).to.deep.equal(['docs/design.md:1: cites backends.md §2, but backends.md has no section 2']);
    });

    it('attributes a section number only to the citation it belongs to', () => {
      // §7 follows a closed parenthesis: it is this file's own numbering, not backends.md's.
      expect(problems(file('docs/techniques.md', '(docs/backends.md §4). See §7 below.'))).to.deep.equal([]);
    });

    it('asks code outside docs/ to write the folder', () => {
      expect(problems(file('packages/a/src/x.ts', '// (techniques.md §0.1)'))).to.deep.equal([
        "packages/a/src/x.ts:1: cites 'techniques.md' without its folder; write docs/techniques.md",
      ]);
    });

    it('reads numbered headings at any level', () => {
      expect([...numberedHeadings('# 1. A\n## 2 B\n### 2.10 C\n#### 2.10.3 D\nnot 3.1 a heading\n## Appendix')]).to.deep.equal(['1', '2', '2.10', '2.10.3']);
    });
  });

  it('the repository cites only documents and sections that exist in it', () => {
    const root = repositoryRoot(__dirname);
    // This folder's two files spell the forbidden references out in order to test for them.
    const files = repositoryTextFiles(root).filter((f) => !f.path.startsWith('packages/core/test/docs/'));
    expect(files.length).to.be.greaterThan(100);
    expect(findReferenceProblems(files, repositoryDocs(root))).to.deep.equal([]);
  });
});
