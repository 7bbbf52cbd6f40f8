import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';
import { repoRoot } from './doc-snippets';
import { publishablePackages } from './publishable';

// The published packages' declarations as a consumer's compiler sees them: every entry
// point in their `exports` (subpaths included), for tests of what the public API's types are.

export interface EntryPoint {
  /** The import specifier: '@tapfit/core', '@tapfit/core/testing', ... */
  specifier: string;
  /** The entry's declaration file. */
  file: string;
}

export function entryPoints(): EntryPoint[] {
  return publishablePackages().flatMap((p) => {
    const exp = (p.manifest.exports ?? {}) as Record<string, { types?: string } | string>;
    return Object.entries(exp)
      .filter(([, target]) => typeof target === 'object' && target.types)
      .map(([sub, target]) => ({ specifier: sub === '.' ? p.name : `${p.name}/${sub.slice(2)}`, file: path.join(p.dir, (target as { types: string }).types) }));
  });
}

/** A strict program over every entry's declarations (node16 resolution); `extra` adds compiler options. */
export function declarationsProgram(extra: ts.CompilerOptions = {}): { program: ts.Program; checker: ts.TypeChecker; entries: EntryPoint[] } {
  const entries = entryPoints();
  for (const e of entries) if (!fs.existsSync(e.file)) throw new Error(`${e.specifier}: ${e.file} is not built (run tsc -b)`);
  const program = ts.createProgram(
    entries.map((e) => e.file),
    { module: ts.ModuleKind.Node16, moduleResolution: ts.ModuleResolutionKind.Node16, target: ts.ScriptTarget.ES2022, strict: true, skipLibCheck: true, types: ['node'], noEmit: true, ...extra },
  );
  return { program, checker: program.getTypeChecker(), entries };
}

/** What each entry exports, aliases resolved. */
export function exportsOf(program: ts.Program, checker: ts.TypeChecker, entry: EntryPoint): { name: string; symbol: ts.Symbol }[] {
  const module = checker.getSymbolAtLocation(program.getSourceFile(entry.file)!)!;
  return checker.getExportsOfModule(module).map((s) => ({ name: s.name, symbol: s.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(s) : s }));
}

/** Type-checks `code` as a module of a consumer project inside the repository (so the packages resolve); returns the errors. */
export function compileConsumer(name: string, code: string, options: ts.CompilerOptions): string[] {
  const dir = path.join(repoRoot, 'examples', `.${name}`);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  try {
    const file = path.join(dir, 'consumer.ts');
    fs.writeFileSync(file, code);
    const program = ts.createProgram([file], {
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      target: ts.ScriptTarget.ES2022,
      strict: true,
      skipLibCheck: true,
      types: ['node'],
      noEmit: true,
      ...options,
    });
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const where = d.file && d.start !== undefined ? `${path.basename(d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ` : '';
      return where + ts.flattenDiagnosticMessageText(d.messageText, '\n');
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
