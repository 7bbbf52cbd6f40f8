import * as fs from 'node:fs';
import * as path from 'node:path';
import { expect } from 'chai';

// The core's folders form layers (errors/options/tensors -> model -> step -> hooks ->
// services -> memory -> plugin -> train -> testing): imports between folders point one
// way. A file-level cycle check (npm test runs dpdm) does not see two folders that import
// each other through different files; this does.

const src = path.resolve(__dirname, '../../src');

/** folder -> folders its files import from (top-level files count as the folder 'index'). */
function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  const folderOf = (file: string) => {
    const rel = path.relative(src, file).split(path.sep);
    return rel.length > 1 ? rel[0] : `${rel[0].replace(/\.ts$/, '')}.ts`;
  };
  const walk = (dir: string): string[] =>
    fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
  for (const file of walk(src)) {
    const from = folderOf(file);
    if (from === 'index.ts' || from === 'testing') continue; // the public entry points import everything
    const edges = graph.get(from) ?? new Set<string>();
    for (const m of fs.readFileSync(file, 'utf8').matchAll(/from '(\.[^']+)'/g)) {
      const to = folderOf(path.resolve(path.dirname(file), m[1]) + '.ts');
      if (to !== from) edges.add(to);
    }
    graph.set(from, edges);
  }
  return graph;
}

/** A cycle of folders, or null. */
function findCycle(graph: Map<string, Set<string>>): string[] | null {
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): string[] | null => {
    if (state.get(n) === 'done') return null;
    if (state.get(n) === 'open') return [...stack.slice(stack.indexOf(n)), n];
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      const c = visit(m);
      if (c) return c;
    }
    stack.pop();
    state.set(n, 'done');
    return null;
  };
  for (const n of graph.keys()) {
    const c = visit(n);
    if (c) return c;
  }
  return null;
}

describe('core: folder arrows point one way', () => {
  it('no two folders of packages/core/src import each other, directly or around a loop', () => {
    expect(findCycle(folderGraph())?.join(' -> ') ?? 'none').to.equal('none');
  });

  it('finds a loop when there is one', () => {
    const g = new Map([['a', new Set(['b'])], ['b', new Set(['c'])], ['c', new Set(['a'])]]);
    expect(findCycle(g)).to.deep.equal(['a', 'b', 'c', 'a']);
    expect(findCycle(new Map([['a', new Set(['b'])], ['b', new Set<string>()]]))).to.equal(null);
  });
});
