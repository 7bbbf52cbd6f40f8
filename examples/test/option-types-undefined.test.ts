import { expect } from 'chai';
import * as ts from 'typescript';
import { compileConsumer, declarationsProgram, exportsOf } from './public-declarations';

// Under `exactOptionalPropertyTypes`, an optional option `x?: T` refuses `{ x: undefined }`,
// though every tapfit option treats undefined as "the default". So every optional field of
// the public option types is declared `x?: T | undefined`, and a strict user can forward
// optional values (`sgd({ lr, momentum: config.momentum })`) as the CLI does.

const OPTION_TYPE = /(Options|Args|Spec|Settings)$/;

const OPTION_PARAMETER = /^(options|opts|args|spec|config|settings)$/;

/** Indexes of the parameters named like an options bag in the first signature of an exported function or class. */
function optionParameters(checker: ts.TypeChecker, symbol: ts.Symbol): number[] {
  const declaration = symbol.valueDeclaration;
  if (!declaration) return [];
  const type = checker.getTypeOfSymbolAtLocation(symbol, declaration);
  const [signature] = symbol.flags & ts.SymbolFlags.Class ? type.getConstructSignatures() : symbol.flags & ts.SymbolFlags.Function ? type.getCallSignatures() : [];
  if (!signature) return [];
  return signature.parameters.flatMap((p, i) => (OPTION_PARAMETER.test(p.name) ? [i] : []));
}

describe('public option types accept explicit undefined (exactOptionalPropertyTypes)', function () {
  this.timeout(180_000);

  it('every optional field of every exported *Options / *Args / *Spec / *Settings type takes undefined', () => {
    const { program, checker, entries } = declarationsProgram();
    const imports: string[] = [];
    const checks: string[] = [];
    for (const entry of entries) {
      const exported = exportsOf(program, checker, entry);
      const types = exported.filter(({ name, symbol }) => OPTION_TYPE.test(name) && symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias)).map(({ name }) => name);
      // Functions and classes whose options parameter has an inline type (`adam(options: AdamOptions & { weightDecay?: number })`).
      const params = exported.flatMap(({ name, symbol }) => optionParameters(checker, symbol).map((i) => ({ name, i, ctor: !!(symbol.flags & ts.SymbolFlags.Class) })));
      const index = imports.length;
      const alias = (n: string) => `${n}_${index}`;
      const names = [...new Set([...types, ...params.map((p) => p.name)])];
      if (!names.length) continue;
      imports.push(`import { ${names.map((n) => `${types.includes(n) ? 'type ' : ''}${n} as ${alias(n)}`).join(', ')} } from '${entry.specifier}';`);
      for (const n of types) checks.push(`export const ${alias(n)}_ok: TakesUndefined<${alias(n)}> = true; // ${entry.specifier} ${n}`);
      for (const p of params) {
        const parameters = p.ctor ? `ConstructorParameters<typeof ${alias(p.name)}>` : `Parameters<typeof ${alias(p.name)}>`;
        checks.push(`export const ${alias(p.name)}_${p.i}_ok: TakesUndefined<NonNullable<${parameters}[${p.i}]>> = true; // ${entry.specifier} ${p.name}(parameter ${p.i + 1})`);
      }
    }
    expect(checks.length, 'option types found').to.be.greaterThan(30);
    const code = [
      ...imports,
      // The optional keys of T whose type refuses an explicit undefined; `true` when there are none.
      'type OptionalKeys<T> = { [K in keyof T]-?: string extends K ? never : number extends K ? never : {} extends Pick<T, K> ? K : never }[keyof T];',
      'type Refusing<T> = { [K in OptionalKeys<T>]-?: { [P in K]: undefined } extends Pick<T, K> ? never : K }[OptionalKeys<T>];',
      'type TakesUndefined<T> = [Refusing<T>] extends [never] ? true : { refusesUndefined: Refusing<T> };',
      ...checks,
      '',
    ].join('\n');
    // Each error names the type or function its line checks.
    const lines = code.split('\n');
    const errors = compileConsumer('option-types-undefined', code, { exactOptionalPropertyTypes: true }).map((e) => {
      const line = /^consumer\.ts:(\d+):/.exec(e)?.[1];
      return line ? `${lines[Number(line) - 1].split('// ')[1]}: ${e.replace(/^consumer\.ts:\d+: /, '')}` : e;
    });
    expect(errors).to.deep.equal([]);
  });

  it("the CLI's pattern compiles: optional config fields forwarded as they are", () => {
    const code = [
      "import { adam, rmsprop, sgd, Trainer, type TapOptions } from '@tapfit/core';",
      "import { onlineNorm } from '@tapfit/plugin-onlinenorm';",
      'interface Config { lr: number; momentum?: number; nesterov?: boolean; weightDecay?: number; b1?: number; seed?: number; stage?: number; epsilon?: number }',
      'export function build(c: Config) {',
      '  const tap: TapOptions = { name: undefined, stage: c.stage };',
      '  return [sgd({ lr: c.lr, momentum: c.momentum, nesterov: c.nesterov, weightDecay: c.weightDecay }), adam({ lr: c.lr, b1: c.b1 }), rmsprop({ lr: c.lr, momentum: c.momentum }), tap, onlineNorm({ epsilon: c.epsilon }), Trainer];',
      '}',
      '',
    ].join('\n');
    expect(compileConsumer('option-types-cli-pattern', code, { exactOptionalPropertyTypes: true })).to.deep.equal([]);
  });
});
