import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

// Code blocks in the repository's Markdown, extracted so a test can compile them (and run
// the ones marked to run): a snippet in a README cannot rot unnoticed.
//
// Conventions for writers: every ```ts block is a complete module (imports included, no
// top-level await: wrap async code in a function); ```ts run marks a block the test also
// executes (it must finish in seconds and clean up after itself); anything that is not
// meant to compile (signatures, pseudo-code) goes in a ```text block.

export const repoRoot = path.resolve(__dirname, '../../..');

export interface Snippet {
  /** The Markdown file, relative to the repository root. */
  file: string;
  /** 1-based line of the first code line in the Markdown file. */
  line: number;
  code: string;
  run: boolean;
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
    snippets.push({ file, line: start + 1, code: lines.slice(start, end).join('\n') + '\n', run: /\brun\b/.test(open[2]) });
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

/**
 * Type-checks the snippets as CommonJS modules of a consumer project (strict,
 * node16 module resolution, the workspace's packages) and emits the runnable ones into
 * `workDir`, which must lie inside the repository so that node_modules resolve.
 */
export function compileSnippets(snippets: Snippet[], workDir: string): CompiledSnippets {
  fs.rmSync(workDir, { recursive: true, force: true });
  fs.mkdirSync(workDir, { recursive: true });
  const names = snippets.map((s, i) => {
    const name = path.join(workDir, `${s.file.replace(/[^A-Za-z0-9]+/g, '_')}_${i}.ts`);
    fs.writeFileSync(name, s.code);
    return name;
  });
  const options: ts.CompilerOptions = {
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    strict: true,
    esModuleInterop: true,
    skipLibCheck: true,
    types: ['node'],
    outDir: path.join(workDir, 'out'),
    rootDir: workDir,
  };
  const program = ts.createProgram(names, options);
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
      if (s.run) runnable.push({ snippet: s, js: path.join(workDir, 'out', path.basename(names[i]).replace(/\.ts$/, '.js')) });
    });
  }
  return { errors, runnable };
}
