import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';
import { compileSnippets, repoRoot, type Resolution, type Snippet } from './doc-snippets';
import { publishablePackages } from './publishable';

// A consumer project's view of the packages' types: every entry point (subpath exports
// included) must resolve whatever module resolution the consumer's tsconfig uses. Under
// node10 (`"module": "commonjs"`), TypeScript ignores `exports`; `typesVersions` maps the
// subpaths there.

function consumerModule(): Snippet {
  const packages = publishablePackages();
  const imports = packages.map((p, i) => `import * as p${i} from '${p.name}';`);
  const uses = packages.map((p, i) => (p.name === '@tapfit/core' ? `const f${i}: Function = p${i}.Trainer;` : `const f${i}: (options: never) => unknown = p${i}.tapfitPlugin;`));
  const code = [
    ...imports,
    "import { describeConformance, testTrainerOptions, type ConformanceSpec } from '@tapfit/core/testing';",
    ...uses,
    'const spec: ConformanceSpec | undefined = undefined;',
    'export const used = [spec, describeConformance, testTrainerOptions().optimizer, ' + packages.map((_, i) => `f${i}`).join(', ') + '];',
    '',
  ].join('\n');
  return { file: 'consumer.ts', line: 1, code, run: false };
}

describe('package types in a consumer project', function () {
  this.timeout(120_000);
  for (const resolution of ['node10', 'node16', 'bundler'] as Resolution[]) {
    it(`every package and '@tapfit/core/testing' resolve with moduleResolution ${resolution}`, () => {
      const workDir = path.join(repoRoot, 'examples', `.consumer-types-${resolution}`);
      try {
        expect(compileSnippets([consumerModule()], workDir, resolution).errors).to.deep.equal([]);
      } finally {
        fs.rmSync(workDir, { recursive: true, force: true });
      }
    });
  }
});
