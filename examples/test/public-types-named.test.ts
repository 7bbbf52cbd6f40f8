import * as path from 'node:path';
import { expect } from 'chai';
import * as ts from 'typescript';
import { repoRoot } from './doc-snippets';
import { compileConsumer, declarationsProgram, exportsOf } from './public-declarations';

// A library built on tapfit that emits declarations (a third-party plugin package) must be
// able to name every type its inferred types contain: a class or interface the packages use
// in a public signature but do not export stops its build (TS2742 "cannot be named without a
// reference to .../dist/src/..."). So every named type reachable from the entry points is exported.

// Local aliases of anonymous types: declaration emit writes their structure, never their name.
const WRITTEN_OUT = new Set(['Grad', 'Kwargs', 'Shape', 'ClassEntry', 'BaseLayerArgs', 'LayerBaseArgs']);

/** Named types (classes, interfaces, enums, aliases) reachable from the entries' declarations but exported by none. */
function unexportedReachableTypes(): string[] {
  const { program, checker, entries } = declarationsProgram();
  const exported = new Set<ts.Symbol>();
  const starts: { via: string; symbol: ts.Symbol }[] = [];
  for (const entry of entries) {
    for (const { name, symbol } of exportsOf(program, checker, entry)) {
      exported.add(symbol);
      starts.push({ via: `${entry.specifier} ${name}`, symbol });
    }
  }
  const ours = (d: ts.Node) => /\/packages\/[^/]+\/dist\/src\//.test(d.getSourceFile().fileName.replace(/\\/g, '/'));
  const named = ts.SymbolFlags.Class | ts.SymbolFlags.Interface | ts.SymbolFlags.Enum | ts.SymbolFlags.TypeAlias;
  const seen = new Set<ts.Symbol>();
  const found = new Map<string, string>();
  const walk = (symbol: ts.Symbol, via: string): void => {
    if (seen.has(symbol)) return;
    seen.add(symbol);
    for (const declaration of symbol.declarations ?? []) {
      if (!ours(declaration)) continue;
      const visit = (n: ts.Node): void => {
        const isPrivate = (ts.isPropertyDeclaration(n) || ts.isMethodDeclaration(n)) && n.modifiers?.some((m) => m.kind === ts.SyntaxKind.PrivateKeyword);
        if (isPrivate) return;
        const name = ts.isTypeReferenceNode(n) ? n.typeName : ts.isExpressionWithTypeArguments(n) ? n.expression : undefined;
        if (name) {
          let target = checker.getSymbolAtLocation(ts.isQualifiedName(name) ? name.right : name);
          if (target && target.flags & ts.SymbolFlags.Alias) target = checker.getAliasedSymbol(target);
          if (target && target.declarations?.some(ours) && !(target.flags & ts.SymbolFlags.TypeParameter)) {
            if (target.flags & named && !exported.has(target) && !WRITTEN_OUT.has(target.name)) {
              found.set(`${target.name} (${path.relative(repoRoot, target.declarations[0].getSourceFile().fileName)})`, via);
            }
            walk(target, via);
          }
        }
        ts.forEachChild(n, visit);
      };
      visit(declaration);
    }
  };
  for (const { via, symbol } of starts) walk(symbol, via);
  return [...found].map(([type, via]) => `${type}, reached from ${via}`).sort();
}

describe('public types can be named by a library that emits declarations', function () {
  this.timeout(180_000);

  it('every class, interface and type alias reachable from the entry points is exported', () => {
    expect(unexportedReachableTypes()).to.deep.equal([]);
  });

  it('a library re-exporting helpers built on every package emits its declarations (no TS2742)', () => {
    const code = [
      "import * as tf from '@tensorflow/tfjs';",
      "import * as core from '@tapfit/core';",
      "import * as lora from '@tapfit/plugin-lora';",
      "import * as on from '@tapfit/plugin-onlinenorm';",
      "import * as pp from '@tapfit/plugin-pipeline';",
      "import * as rs from '@tapfit/plugin-revsilo';",
      'export const hooksBackward = (h: core.Hooks) => h.backward;',
      'export const tapOnlyBackward = (h: core.TapOnlyHooks) => h.backward;',
      'export const batchEnd = (h: core.Hooks) => h.batchEnd;',
      'export const manifestTensors = (m: core.Manifest) => m.tensors;',
      'export const makeData = (x: Float32Array, y: Int32Array) => core.arrayData({ x, y, xShape: [4] });',
      "export const backend = () => core.selectBackend('cpu', { log: false });",
      'export const gradients = (f: () => tf.Scalar, v: tf.Tensor[]) => core.valueAndGradients(f, v);',
      "export const layerClass = () => core.registeredLayerClass('Dense');",
      "export const applyIt = (m: tf.LayersModel) => lora.applyLora(m, { targets: 'all-linear', rank: 4, dryRun: true });",
      'export const applyOptions = (o: Parameters<typeof lora.applyLora>[1]) => o;',
      'export const readIt = (dir: string) => lora.readAdapter(dir);',
      'export const loraLayer = (l: lora.LoraLayer) => l;',
      'export const ppOptions = (p: ReturnType<typeof pp.pipeline>) => p.options;',
      'export const backward = pp.stageBackward;',
      'export const initOf = rs.initializerOf;',
      'export const onLayer = () => on.onlineNormLayer({});',
      'export const normalize = on.onlineNormalize;',
      '',
    ].join('\n');
    expect(compileConsumer('public-types-named', code, { declaration: true, emitDeclarationOnly: true, noEmit: false, outDir: 'out' })).to.deep.equal([]);
  });
});
