#!/usr/bin/env node
// Fails when the TypeScript sources of a workspace package import each other in a
// cycle, type-only imports included. A runtime cycle hands a module an import that is
// still undefined while it loads; a type-only one still tangles the layering.
// Packages cannot form cycles with each other: tsc -b refuses circular project
// references, so imports of other packages (their dist/) are not followed.
'use strict';
const path = require('node:path');
const { parseCircular, parseDependencyTree } = require('dpdm');

async function main() {
  const root = path.resolve(__dirname, '..');
  const { workspaces } = require(path.join(root, 'package.json'));
  const sources = workspaces.map((w) => `${w}/src/**/*.ts`);
  const tree = await parseDependencyTree(sources, {
    cwd: root,
    context: root,
    extensions: ['.ts', '.d.ts', '.js', '.json'],
    exclude: /node_modules|[\\/]dist[\\/]/,
    transform: false, // keep type-only imports
    skipDynamicImports: false,
  });
  const files = Object.keys(tree).filter((f) => tree[f] !== null && f.endsWith('.ts')).length;
  const cycles = parseCircular(tree);
  if (cycles.length === 0) {
    console.log(`import cycles: none in ${files} source files (${sources.join(', ')})`);
    return;
  }
  console.error(`import cycles: ${cycles.length} found; break each by moving what both files need into a third module:`);
  for (const cycle of cycles) console.error(`  ${[...cycle, cycle[0]].join(' -> ')}`);
  process.exitCode = 1;
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
