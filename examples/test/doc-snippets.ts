import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

// Code blocks in the repository's Markdown, extracted so a test can compile them (and run
// the ones marked to run): a snippet in a README cannot rot unnoticed.
//
// Conventions for writers: every ```ts block is a complete module (imports included, no
// top-level await: wrap async code in a function); ```ts run marks a block the test also
// executes (it must finish in seconds and clean up after itself); ```ts file=name.ts names
// the module so that later blocks of the same document can import it ('./name'); anything
// that is not meant to compile (signatures, pseudo-code) goes in a ```text block.

export const repoRoot = path.resolve(__dirname, '../../..');

export interface Snippet {
  /** The Markdown file, relative to the repository root. */
  file: string;
  /** 1-based line of the first code line in the Markdown file. */
  line: number;
  code: string;
  run: boolean;
  /** The module's file name (`file=name.ts`), for blocks other blocks import. */
  name?: string;
}

/** Every Markdown file of the repository that users read: READMEs and docs/. */
export function markdownFiles(root = repoRoot): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name === 'node_modules' || e.name === 'dist' || e.name.startsWith('.')) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.md')) out.push(path.relative(root, p));
    }
  };
  walk(root);
  return out.sort();
}

/** The ```ts / ```typescript blocks of a Markdown text, with their position. */
export function extractSnippets(file: string, text: string): Snippet[] {
  const snippets: Snippet[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript)\b(.*)$/.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    const name = /\bfile=([\w.-]+\.ts)\b/.exec(open[2])?.[1];
    snippets.push({ file, line: start + 1, code: lines.slice(start, end).join('\n') + '\n', run: /\brun\b/.test(open[2]), ...(name ? { name } : {}) });
    i = end;
  }
  return snippets;
}

export interface CompiledSnippets {
  /** Compiler errors, as 'file.md:line: message'. */
  errors: string[];
  /** The emitted JavaScript of every runnable snippet. */
  runnable: { snippet: Snippet; js: string }[];
}

/** How a consumer project resolves packages: Node's CommonJS rules (node10), node16, or a bundler's. */
export type Resolution = 'node10' | 'node16' | 'bundler';

export function consumerOptions(resolution: Resolution, outDir: string, rootDir: string): ts.CompilerOptions {
  const modes = {
    node10: { module: ts.ModuleKind.CommonJS, moduleResolution: ts.ModuleResolutionKind.Node10 },
    node16: { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16 },
    bundler: { module: ts.ModuleKind.ESNext, moduleResolution: ts.ModuleResolutionKind.Bundler },
  };
  // The strictest settings users turn on beyond `strict`: what compiles here compiles for them.
  const strictest = { noUncheckedIndexedAccess: true, exactOptionalPropertyTypes: true };
  return { target: ts.ScriptTarget.ES2022, ...modes[resolution], strict: true, ...strictest, esModuleInterop: true, skipLibCheck: true, types: ['node'], outDir, rootDir };
}

/**
 * Type-checks the snippets as CommonJS modules of a consumer project (strict, node16
 * module resolution unless told otherwise, the workspace's packages) and emits the
 * runnable ones into `workDir`, which must lie inside the repository so that
 * node_modules resolve. Each Markdown file's blocks share one folder, so a block can
 * import a named block of the same document.
 */
export function compileSnippets(snippets: Snippet[], workDir: string, resolution: Resolution = 'node16'): CompiledSnippets {
  fs.rmSync(workDir, { recursive: true, force: true });
  const names = snippets.map((s, i) => {
    const dir = path.join(workDir, s.file.replace(/[^A-Za-z0-9]+/g, '_'));
    fs.mkdirSync(dir, { recursive: true });
    const name = path.join(dir, s.name ?? `snippet_${i}.ts`);
    if (fs.existsSync(name)) throw new Error(`${s.file}:${s.line}: a second block named ${s.name}`);
    fs.writeFileSync(name, s.code);
    return name;
  });
  const outDir = path.join(workDir, 'out');
  const program = ts.createProgram(names, consumerOptions(resolution, outDir, workDir));
  const errors = ts.getPreEmitDiagnostics(program).map((d) => {
    const i = d.file ? names.indexOf(d.file.fileName) : -1;
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (i < 0 || d.start === undefined) return `${d.file?.fileName ?? '(program)'}: ${message}`;
    const { line } = d.file!.getLineAndCharacterOfPosition(d.start);
    return `${snippets[i].file}:${snippets[i].line + line}: ${message}`;
  });
  const runnable: CompiledSnippets['runnable'] = [];
  if (!errors.length) {
    program.emit();
    snippets.forEach((s, i) => {
      if (s.run) runnable.push({ snippet: s, js: path.join(outDir, path.relative(workDir, names[i])).replace(/\.ts$/, '.js') });
    });
  }
  return { errors, runnable };
}
