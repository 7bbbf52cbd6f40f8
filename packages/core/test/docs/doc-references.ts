import * as fs from 'node:fs';
import * as path from 'node:path';

/*
 * Checks that the repository documents only point inside the repository: no reference to
 * notes kept outside it, every cited `docs/<name>.md` exists, and every `<name>.md §N`
 * names a numbered heading that the document has.
 */

export interface TextFile {
  /** Path relative to the repository root, with forward slashes. */
  readonly path: string;
  readonly text: string;
}

export interface ReferenceProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

/** Places outside the repository that repository files must never point to. */
// (spelt in parts so that this checker does not itself read as a reference to them)
const SHARED = ['sha', 'red'].join('');
const OUTSIDE = [`${SHARED}/docs`, `../${SHARED}`, 'backend-notes', 'anchors.md'];

const DOC_MENTION = /(?:^|[^\w.-])((?:[\w.-]+\/)*?)([\w-]+\.md)\b/g;
const SECTION = /§\s*(\d+(?:\.\d+)*)/g;
/** Text between a document's name and a section number that ends the citation. */
const CITATION_BREAK = /[)\];]|\.\s/;

/**
 * Problems in `files`, given the documents under docs/ by file name (`techniques.md`) and
 * their text. Files under docs/ may cite each other by bare name; everyone else writes
 * `docs/<name>.md`.
 */
export function findReferenceProblems(files: readonly TextFile[], docs: ReadonlyMap<string, string>): ReferenceProblem[] {
  const sections = new Map([...docs].map(([name, text]) => [name, numberedHeadings(text)]));
  const problems: ReferenceProblem[] = [];
  for (const file of files) {
    const insideDocs = file.path.startsWith('docs/');
    file.text.split('\n').forEach((line, i) => {
      const report = (message: string) => problems.push({ file: file.path, line: i + 1, message });
      for (const outside of OUTSIDE) {
        if (line.includes(outside)) report(`refers to '${outside}', which is not part of the repository; cite docs/techniques.md or docs/backends.md instead`);
      }
      const mentions = [...line.matchAll(DOC_MENTION)].map((m) => ({
        dir: m[1],
        name: m[2],
        end: (m.index ?? 0) + m[0].length,
      }));
      for (const m of mentions) {
        const citesDocs = m.dir === 'docs/' || m.dir.endsWith('/docs/');
        if (citesDocs && !docs.has(m.name)) report(`cites docs/${m.name}, which does not exist`);
        if (!citesDocs && m.dir === '' && docs.has(m.name) && !insideDocs) report(`cites '${m.name}' without its folder; write docs/${m.name}`);
      }
      for (const s of line.matchAll(SECTION)) {
        const at = s.index ?? 0;
        const cited = [...mentions].reverse().find((m) => m.end <= at && !CITATION_BREAK.test(line.slice(m.end, at)));
        if (!cited || !docs.has(cited.name)) continue;
        if (!sections.get(cited.name)!.has(s[1])) report(`cites ${cited.name} §${s[1]}, but ${cited.name} has no section ${s[1]}`);
      }
    });
  }
  return problems;
}

/** Section numbers of headings such as `## 4. Adaptive Braking` or `### 4.2 Update rule`. */
export function numberedHeadings(markdown: string): Set<string> {
  const ids = new Set<string>();
  for (const line of markdown.split('\n')) {
    const m = /^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s/.exec(line);
    if (m) ids.add(m[1]);
  }
  return ids;
}

const SCANNED_ROOTS = ['packages', 'examples', 'bench', 'docs', 'README.md'];
const SKIPPED_DIRS = new Set(['node_modules', 'dist', '.git', 'runs']);
const SCANNED_EXTENSIONS = new Set(['.ts', '.js', '.mjs', '.cjs', '.md', '.json']);

/** Text files of the repository that documentation references may appear in. */
export function repositoryTextFiles(root: string): TextFile[] {
  const files: TextFile[] = [];
  const visit = (relative: string): void => {
    const full = path.join(root, relative);
    if (!fs.existsSync(full)) return;
    if (fs.statSync(full).isDirectory()) {
      for (const entry of fs.readdirSync(full)) if (!SKIPPED_DIRS.has(entry)) visit(path.posix.join(relative, entry));
    } else if (SCANNED_EXTENSIONS.has(path.extname(relative)) && path.basename(relative) !== 'package-lock.json') {
      files.push({ path: relative, text: fs.readFileSync(full, 'utf8') });
    }
  };
  SCANNED_ROOTS.forEach(visit);
  return files;
}

/** The markdown documents under docs/, by file name. */
export function repositoryDocs(root: string): Map<string, string> {
  const dir = path.join(root, 'docs');
  return new Map(
    fs
      .readdirSync(dir)
      .filter((name) => name.endsWith('.md'))
      .map((name) => [name, fs.readFileSync(path.join(dir, name), 'utf8')]),
  );
}

/** The repository root: the nearest folder above `from` that holds lerna.json. */
export function repositoryRoot(from: string): string {
  for (let dir = from; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'lerna.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error(`no lerna.json above ${from}: run the tests from inside the repository`);
  }
}
