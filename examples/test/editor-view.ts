import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { repoRoot } from './doc-snippets';

// What an editor shows a consumer: TypeScript's language service over one file of a strict
// consumer project inside the repository (so the packages resolve), for tests of completion
// lists and hover documentation.

export interface EditorView {
  /** The string-literal completions an editor offers inside the empty literal `''` that follows `marker` (`/*|name|*\/''` in the code). */
  completions(marker: string): string[];
  /** The hover documentation of the identifier right after `marker`; '' when it has none. */
  hoverDoc(marker: string): string;
  dispose(): void;
}

export function editorView(name: string, code: string): EditorView {
  const dir = path.join(repoRoot, 'examples', `.${name}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'consumer.ts');
  fs.writeFileSync(file, code);
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    types: ['node'],
    noEmit: true,
  };
  const host: ts.LanguageServiceHost = {
    getScriptFileNames: () => [file],
    getScriptVersion: () => '1',
    getScriptSnapshot: (f) => (fs.existsSync(f) ? ts.ScriptSnapshot.fromString(fs.readFileSync(f, 'utf8')) : undefined),
    getCurrentDirectory: () => dir,
    getCompilationSettings: () => options,
    getDefaultLibFileName: (o) => ts.getDefaultLibFilePath(o),
    fileExists: ts.sys.fileExists,
    readFile: ts.sys.readFile,
    readDirectory: ts.sys.readDirectory,
    directoryExists: ts.sys.directoryExists,
    getDirectories: ts.sys.getDirectories,
    realpath: ts.sys.realpath,
  };
  const service = ts.createLanguageService(host);
  const at = (marker: string): number => {
    const i = code.indexOf(`/*|${marker}|*/`);
    if (i < 0) throw new Error(`no marker ${marker}`);
    return i + `/*|${marker}|*/`.length;
  };
  return {
    completions(marker) {
      const list = service.getCompletionsAtPosition(file, at(marker) + 1, {}); // + 1: inside the quotes
      return (list?.entries ?? []).filter((e) => e.kind === ts.ScriptElementKind.string).map((e) => e.name);
    },
    hoverDoc(marker) {
      const info = service.getQuickInfoAtPosition(file, at(marker));
      return info ? ts.displayPartsToString(info.documentation) : '';
    },
    dispose() {
      service.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
